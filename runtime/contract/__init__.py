"""The model-dir contract: manifest.json and its schema, safe reading of an untrusted folder, the scan of its graphs,
signatures, and the runtime's two error types. Everything else in edgevae reads a model dir through these."""
