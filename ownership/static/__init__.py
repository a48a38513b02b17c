"""Static checking of driver code: a mypy plugin and `python -m ownership check`.

The runtime model (`ownership.context`, `ownership.unsafe`, `ownership.marker`)
raises a `SafetyViolation` when a bug actually runs. This package finds the same bugs
without running the code, from the same declarations: the `@may_sleep` and
`@unsafe_fn` decorators, the `ownership.marker` Send/Sync declarations and the guard
types of `ownership.sync` and `ownership.mm`.

* `plugin`: the mypy plugin (`plugins = ownership.static.plugin` in mypy.ini), one
  error code per rule (`codes`).
* `settings`: the plugin's `[ownership-static]` section of the mypy configuration.
* `cli`: `python -m ownership check PATH... [--format text|json|sarif]`.
* `shipped`: the summaries of `ownership` and `binder` a wheel carries (mypy keeps no
  bodies of installed packages), made by `build_summaries` when the wheel is built.
* `sarif`: SARIF 2.1.0 output for the check and for `python -m ownership contracts`.
* the analysis behind the plugin: `walker` (the flow-sensitive walk of one module),
  which records `facts`; `analysis` judges them against the callees' `summary`s,
  kept across runs by `store`; `resolve` (callees and types), `gfp` (GFP values) and
  `safety` (an unsafe block's justification) are what the walk asks.

Importing this package imports nothing else: the plugin module is loaded by mypy, the
command line by `ownership.__main__`.
"""
