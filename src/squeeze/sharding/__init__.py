"""The grid on many machines: waves of stages over N workers, and the Slurm / Kubernetes
launchers. No stage imports it."""
