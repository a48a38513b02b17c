"""Static checking of driver code: a mypy plugin and `python -m ownership check`.

The runtime model (`ownership.context`, `ownership.unsafe`, `ownership.marker`)
raises a `SafetyViolation` when a bug actually runs. This package finds the same bugs
without running the code, from the same declarations: the `@may_sleep` and
`@unsafe_fn` decorators, the `ownership.marker` Send/Sync declarations and the guard
types of `ownership.sync` and `ownership.mm`.

* `plugin`: the mypy plugin (`plugins = ownership.static.plugin` in mypy.ini), one
  error code per rule (`rules`).
* `cli`: `python -m ownership check PATH... [--format text|json|sarif]`.
* `sarif`: SARIF 2.1.0 output for the check and for `python -m ownership contracts`.
* `analysis`, `facts`, `resolve`, `gfp`, `store`: the analysis behind the plugin.

Importing this package imports nothing else: the plugin module is loaded by mypy, the
command line by `ownership.__main__`.
"""
