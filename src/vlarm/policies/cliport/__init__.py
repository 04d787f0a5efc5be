"""CLIPort (Shridhar, Manuelli, Fox, CoRL 2021)."""

from vlarm.policies.cliport.configuration_cliport import CLIPortConfig
from vlarm.policies.cliport.modeling_cliport import CLIPortPolicy

__all__ = ["CLIPortConfig", "CLIPortPolicy"]
