"""RT-1, the Robotics Transformer (Brohan et al., RSS 2023): configuration, action tokenizer, model, training on
closed-loop trajectories."""

from vlarm.policies.rt1.configuration import RT1Config, paper_config
from vlarm.policies.rt1.modeling import RT1Policy

__all__ = ["RT1Config", "RT1Policy", "paper_config"]
