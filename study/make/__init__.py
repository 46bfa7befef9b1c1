"""Making models: data, the architecture registry, the shared training loop, sparsity profiles,
export, quantization-aware training, mask diagnostics and Intel's NNCF arm. ``study.variants``
drives these stages for each variant of a preset."""
