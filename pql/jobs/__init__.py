"""Training and prediction jobs: label table -> features -> rankers -> metrics and outputs."""
