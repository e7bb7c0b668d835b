"""The peers' implementations of the workloads, each run as a process of its own."""
