"""From finished runs to answers: result tables (`results`), intervals, complexity tables,
plots, and the markdown every report is written in. Imports `train`, `measure` and `util`
(docs/workdirs.md)."""
