"""Pick-and-place policies: Transporter (Zeng et al., CoRL 2020) and CLIPort (Shridhar et al., CoRL 2021).

One sub-package per policy (``configuration_<name>.py``, ``modeling_<name>.py``); shared heads, transport
operator, processing and augmentation live beside them. Build policies with :func:`make_policy`, load
checkpoints with :func:`load_policy`, train with :func:`vlarm.policies.training.train`.
"""

from vlarm.policies.base import CheckpointError, Policy, resolve_device
from vlarm.policies.cliport import CLIPortConfig, CLIPortPolicy
from vlarm.policies.factory import available_policies, load_policy, make_config, make_policy
from vlarm.policies.rt1 import RT1Config, RT1Policy
from vlarm.policies.transporter import TransporterConfig, TransporterPolicy

__all__ = [
    "CLIPortConfig",
    "CLIPortPolicy",
    "CheckpointError",
    "Policy",
    "RT1Config",
    "RT1Policy",
    "TransporterConfig",
    "TransporterPolicy",
    "available_policies",
    "load_policy",
    "make_config",
    "make_policy",
    "resolve_device",
]
