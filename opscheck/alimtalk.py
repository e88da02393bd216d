"""Kakao AlimTalk template rules, checked on a generated template (shared/SERVICE.md).

Each rule is a small function returning the problems it finds, in plain words, so a
smoke check can name exactly why a template would be rejected.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_BODY = 1000
MAX_VARIABLES = 40
VARIABLE = re.compile(r"#\{([^{}\n]*)\}")
NAME = re.compile(r"^[0-9A-Za-z가-힣_]+(?: [0-9A-Za-z가-힣_]+)*$")
STRAY = re.compile(r"#\{[^}\n]*$|#\{[^}\n]*\{|\$\{|\{\{")


@dataclass(frozen=True)
class Template:
    text: str
    variables: list[str] = field(default_factory=list)  # as the service declares them
    button: str = ""


def used(text: str) -> list[str]:
    """The variable names the text uses, in order, once each."""
    return list(dict.fromkeys(m.strip() for m in VARIABLE.findall(text)))


def body_length(t: Template) -> list[str]:
    n = len(t.text)
    return [f"body is {n} characters, limit {MAX_BODY}"] if n > MAX_BODY else []


def variable_syntax(t: Template) -> list[str]:
    problems = [
        f"malformed variable #{{{raw}}}"
        for raw in VARIABLE.findall(t.text)
        if not NAME.match(raw.strip())
    ]
    rest = VARIABLE.sub("", t.text)
    for line in rest.splitlines():
        if STRAY.search(line):
            problems.append(f"malformed variable syntax in {line.strip()[:40]!r}")
    return problems


def declared_match_text(t: Template) -> list[str]:
    in_text, declared = set(used(t.text)), {v.strip() for v in t.variables}
    problems = []
    if declared - in_text:
        problems.append(f"declared but not in the text: {', '.join(sorted(declared - in_text))}")
    if in_text - declared:
        problems.append(f"in the text but not declared: {', '.join(sorted(in_text - declared))}")
    return problems


def variable_count(t: Template) -> list[str]:
    n = len(used(t.text))
    return [f"{n} variables, limit {MAX_VARIABLES}"] if n > MAX_VARIABLES else []


def not_only_variables(t: Template) -> list[str]:
    rest = re.sub(r"[\s\W_]+", "", VARIABLE.sub("", t.text))
    return ["the body is made only of variables"] if t.text.strip() and not rest else []


def no_variable_in_button(t: Template) -> list[str]:
    return [f"variable in the button name {t.button!r}"] if "#{" in t.button else []


def not_empty(t: Template) -> list[str]:
    return ["the body is empty"] if not t.text.strip() else []


RULES: list[Callable[[Template], list[str]]] = [
    not_empty,
    body_length,
    variable_syntax,
    declared_match_text,
    variable_count,
    not_only_variables,
    no_variable_in_button,
]


def problems(t: Template) -> list[str]:
    """Every rule's problems with the template, in rule order."""
    return [p for rule in RULES for p in rule(t)]


def generation_problems(body: object, required: list[str], min_score: float) -> list[str]:
    """What is wrong with a /generate answer, judged on substance, not on `success`.

    When its LLM or embeddings are down the service still answers 200, `success: true`
    and a compliant-looking template from a fallback path; the tells are the
    workflow's own errors, no policy sources (retrieval did not run), and a text that
    ignores the variables the request required.
    """
    if not isinstance(body, dict):
        return ["the answer is not a JSON object"]
    if body.get("success") is not True:
        return [f"success is {body.get('success')!r}"]
    tpl = body.get("template") if isinstance(body.get("template"), dict) else {}
    comp = body.get("compliance") if isinstance(body.get("compliance"), dict) else {}
    flow = body.get("workflow_info") if isinstance(body.get("workflow_info"), dict) else {}
    found: list[str] = []
    template = Template(
        str(tpl.get("text", "")),
        [str(v) for v in tpl.get("variables") or []],
        str(tpl.get("button_suggestion") or ""),
    )
    found += problems(template)
    missing = [v for v in required if v not in used(template.text)]
    if missing:
        found.append(f"required variables missing from the text: {', '.join(missing)}")
    score = comp.get("score")
    if not isinstance(score, int | float):
        found.append("no compliance score in the answer")
    elif score < min_score:
        found.append(f"compliance score is {score:g}, minimum {min_score:g}")
    errors = flow.get("errors")
    if errors:
        shown = "; ".join(str(e)[:120] for e in errors[:3])
        found.append(f"the workflow reports errors (fallback answer?): {shown}")
    if not flow.get("policy_sources"):
        found.append("no policy sources: retrieval did not run (fallback answer?)")
    return found
