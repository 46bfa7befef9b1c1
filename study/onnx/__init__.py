"""Facts about ONNX files: the order-free content hash, cleanup after export, int8 graph facts and
one initializer per weight. Imports nothing else of the project (engines and makers import it)."""
