"""One module per pipeline step; each stage script in stages/ imports only its own step, so a
stage's import closure (its DVC deps) holds just the library code that decides its outputs."""
