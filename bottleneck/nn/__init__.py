"""The networks, from the op up.

- `paths`: `Paths`, how each kind of op is computed (XLA's op or a faster formulation with the
  same numbers); one value from the config to every conv unit and max pool.
- `layers`: the conv unit (conv -> batch norm -> ReLU), pools, LRN, classifier head.
- `blocks`: the Inception blocks, each with and without its 1x1 reductions, built from a
  `Reduction` (whether the reductions exist, their width, their activation) and a `ConvStyle`
  (bias and batch-norm conventions, precision, paths).
- `models`: the whole networks, each a sequence of named stages.
- `registry`: models by name, built from a config's flat fields.
- `conversions`: Dense layers as convolutions, and back.
"""
