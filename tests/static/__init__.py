"""Tests of the static checker (`ownership.static`): the golden corpus in `bad/` and
`good/`, the cases it cannot see in `unseen/`, and the command line, SARIF and cache
behaviour."""
