"""Transporter Networks (Zeng et al., CoRL 2020)."""

from vlarm.policies.transporter.configuration_transporter import TransporterConfig
from vlarm.policies.transporter.modeling_transporter import TransporterPolicy

__all__ = ["TransporterConfig", "TransporterPolicy"]
