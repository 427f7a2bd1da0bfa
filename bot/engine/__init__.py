"""The conversation engine: flows in, outbound messages out; no HTTP, no database."""

from bot.engine.actions import Action, ActionContext, ActionRegistry, ActionResult, ActionSpec, ArgsIssue
from bot.engine.engine import ActionError, Conversation, Engine, Outcome
from bot.engine.events import Customer, Event
from bot.engine.flows import FlowLoadError, FlowSet, check_flows, load_flows
from bot.engine.marked_yaml import FlowProblem
from bot.engine.schema import Flow, State

__all__ = [
    "Action",
    "ActionContext",
    "ActionError",
    "ActionRegistry",
    "ActionResult",
    "ActionSpec",
    "ArgsIssue",
    "Conversation",
    "Customer",
    "Engine",
    "Event",
    "Flow",
    "FlowLoadError",
    "FlowProblem",
    "FlowSet",
    "Outcome",
    "State",
    "check_flows",
    "load_flows",
]
