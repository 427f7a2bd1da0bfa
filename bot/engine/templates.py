"""The shop's approved WhatsApp message templates: templates/<name>.yaml, one file each.

Outside the 24-hour customer-service window WhatsApp delivers only approved templates, and a template
sent with the wrong number of parameters fails (error 132000). Flows are checked against this catalog
when they load, so such a mistake is refused in the editor's terminal, not discovered by a customer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from bot.engine.marked_yaml import FlowProblem, MarkedSource
from bot.engine.schema import LANGUAGE, flow_error

PARAMETER = re.compile(r"\{\{\s*(\d+)\s*\}\}")
TEMPLATE_NAME = re.compile(r"^[a-z0-9_]{1,512}$")
QUICK_REPLY_TITLE_MAX = 25


def parameter_count(body: str) -> int:
    """{{1}} .. {{n}}: the highest number used (Meta numbers them from 1 without gaps)."""
    return max((int(n) for n in PARAMETER.findall(body)), default=0)


def _name(value: str) -> str:
    if not TEMPLATE_NAME.match(value):
        raise flow_error(f"'{value}' is not a template name", "lower case letters, digits and _ only")
    return value


def _bodies(value: dict[str, str]) -> dict[str, str]:
    counts: set[int] = set()
    for language, body in value.items():
        if not LANGUAGE.match(language):
            raise flow_error(f"'{language}' is not a language code", "use codes like en, es, zh, en_US")
        numbers = sorted({int(n) for n in PARAMETER.findall(body)})
        if numbers and numbers != list(range(1, numbers[-1] + 1)):
            raise flow_error(
                f"the {language} text skips a parameter", "number them {{1}}, {{2}}, ... in order"
            )
        counts.add(parameter_count(body))
    if len(counts) > 1:
        raise flow_error("the languages use different numbers of parameters", "give each text the same {{n}}")
    return value


class TemplateFile(BaseModel):
    """One approved template as the shop keeps it (the same name, category and texts as in Meta's
    WhatsApp Manager)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, AfterValidator(_name)]
    category: Literal["utility", "marketing", "authentication"] = "utility"
    status: Literal["approved", "pending", "rejected", "paused", "disabled"] = "approved"
    languages: Annotated[dict[str, str], AfterValidator(_bodies)] = Field(min_length=1)
    """Language code -> the body text with {{1}}, {{2}} ... parameters."""
    examples: list[str] = []
    """One example value per parameter: Meta asks for them when the template is submitted."""
    buttons: dict[str, list[Annotated[str, Field(min_length=1, max_length=QUICK_REPLY_TITLE_MAX)]]] = {}
    """Quick-reply button titles per language, in order (the flow sends one payload per button)."""

    @model_validator(mode="after")
    def _one_example_per_parameter(self) -> TemplateFile:
        if self.examples and len(self.examples) != self.parameters:
            raise flow_error(
                f"{len(self.examples)} example(s) for {self.parameters} parameter(s)",
                "give one example value per {{n}}, in order",
            )
        return self

    @property
    def parameters(self) -> int:
        return parameter_count(next(iter(self.languages.values())))


@dataclass(frozen=True)
class TemplateCatalog:
    templates: Mapping[str, TemplateFile]
    directory: Path | None = None

    def get(self, name: str) -> TemplateFile | None:
        return self.templates.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.templates))


def load_templates(directory: Path) -> tuple[TemplateCatalog, list[FlowProblem]]:
    """Every templates/*.yaml; a missing folder is an empty catalog (a shop may have none yet)."""
    templates: dict[str, TemplateFile] = {}
    problems: list[FlowProblem] = []
    files = sorted(directory.glob("*.y*ml")) if directory.is_dir() else []
    for path in files:
        source = MarkedSource(str(path))
        try:
            document = source.parse(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(FlowProblem(str(path), 1, 1, f"cannot read this file: {exc}"))
            continue
        if document is not None:
            try:
                template = TemplateFile.model_validate(document)
            except ValidationError as exc:
                source.add_validation((), exc)
            else:
                if template.name != path.stem:
                    source.add(
                        ("name",),
                        f"template '{template.name}' is in file '{path.name}'",
                        "name the file after it",
                    )
                elif template.name in templates:
                    source.add(("name",), f"template '{template.name}' is defined twice")
                else:
                    templates[template.name] = template
        problems.extend(source.problems)
    return TemplateCatalog(MappingProxyType(templates), directory), problems
