"""The gateway's operations tools: backups, the audits, the probe, the health server and the exporter.

Every command reads one JSON settings file that the operations role renders from the
inventory (``--config``, default ``/etc/litellm-ops/ops.json``) and secrets from
systemd credentials (``$CREDENTIALS_DIRECTORY``). Each timer-driven command writes a
machine-readable result under the state directory, which the health server and the
exporter read.
"""

# The one place the version is set: the build (pyproject.toml) and the operations role read it here.
__version__ = "1.0.0"
