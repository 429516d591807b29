"""`kern.tools.user_control_flow`: the reference API's path of the toolkit that lets the model ask the
person for values it lacks; kern's is `UserInputTools` (`kern.tools.user_input`)."""

from kern.tools.user_input import UserInputTools as UserControlFlowTools

__all__ = ["UserControlFlowTools"]
