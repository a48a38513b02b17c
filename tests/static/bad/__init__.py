"""Driver snippets with one rule broken each; `# expect: <code>` marks every finding."""
