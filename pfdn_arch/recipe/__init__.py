"""The training recipe on BasicSR: one run's options (``options``), BasicSR's pipelines run with them
(``pipelines``), the experiment folder (``experiment``), what each run measured (``results``), the chain of stages
and its smoke profile (``stages``, ``schedule``), the benchmark protocol (``protocol``) and the report's pictures
(``report``). Needs basicsr."""
