"""The studies, each a question answered in one report: the main report (`report`), the
ablation study (`ablation`), the families (`families`) and 1x1 = fully connected
(`fully_conv`). The top of the library: may import every other folder (docs/ablations.md)."""
