"""What a network or a block costs: parameters and multiply-adds (`complexity`), time
(`benchmark`, with its PyTorch peer `torch_peer`), memory traffic (`roofline`). Imports `nn` and
`util` (docs/benchmarks.md, docs/memory.md)."""
