"""Teacher rules: plain, SG, EMA, DirectPred and yours, as first-class objects.

* :mod:`~dualjax.rules.base` — :class:`TeacherRule`, :class:`TeacherState`, momentum schedules;
* :mod:`~dualjax.rules.builtin` — :func:`plain`, :func:`sg`, :func:`ema` (the EMA convention);
* :mod:`~dualjax.rules.directpred` — :func:`directpred` (Tian et al. 2021);
* :mod:`~dualjax.rules.step` — :func:`make_step`, :func:`apply_update`, :func:`loss_and_grads`;
* :mod:`~dualjax.rules.fields` — :func:`field`, :func:`ema_field`: expected continuous-time fields;
* :mod:`~dualjax.rules.registry` — :func:`register`, :func:`get`, :func:`names`: names -> rules.

Only this package looks at a rule's name; everything else reads the rule's properties.
"""

from dualjax.rules.base import (
    Schedule,
    TeacherRule,
    TeacherState,
    call_with_extras,
    check_rule,
    constant_momentum,
    describe,
    linear_momentum,
    passes_gradient,
)
from dualjax.rules.builtin import ema, plain, sg
from dualjax.rules.directpred import directpred, predictor_from_correlation
from dualjax.rules.fields import ema_field, ema_flow, field, plain_flow, sg_flow
from dualjax.rules.registry import get, names, options, register, resolve, unregister
from dualjax.rules.step import StepState, apply_update, init_state, loss_and_grads, make_step

register("plain", plain)
register("sg", sg)
register("ema", ema)
register("directpred", directpred)

__all__ = [
    "Schedule", "StepState", "TeacherRule", "TeacherState", "apply_update", "call_with_extras", "check_rule",
    "constant_momentum", "describe", "directpred", "ema", "ema_field", "ema_flow", "field", "get", "init_state",
    "linear_momentum", "loss_and_grads", "make_step", "names", "options", "passes_gradient", "plain", "plain_flow",
    "predictor_from_correlation", "register", "resolve", "sg", "sg_flow", "unregister",
]
