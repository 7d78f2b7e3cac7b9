"""Pure tensor functions: the math behind segreg's losses and heads.

Nothing here touches a registry or an ``nn.Module``; each function states the
equation it implements and points to the doc (docs/) that derives it.
"""
__all__: list = []
