"""Device tools: goldens and `verify`, `tune` and the device profiles it writes, NPU target records, and the facts about
the machine a report names."""
