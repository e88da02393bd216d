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


# Phrases of a text that reports its own failure: the LLM client's canned template
# ("템플릿 생성에 실패했습니다."), not a healthy notice about a failed payment or delivery.
FAILURE_TEXT = re.compile(
    r"(?:템플릿|메시지|문구|알림톡)\s*(?:생성|작성)\S*\s*(?:에|이|을|중)?\s*(?:실패|오류|에러)"
    r"|생성에\s*실패|생성\s*중\s*오류|failed to generate|generation failed",
    re.I,
)
# Violations that say the compliance step itself did not run ("컴플라이언스 검사 실패",
# "검증 중 오류 발생: ..."), as opposed to a rule the template broke.
CHECK_FAILED = re.compile(r"검사\s*실패|검증\s*(?:중\s*)?(?:오류|실패)|check failed", re.I)
FALLBACK_METHODS = ("fallback", "error")  # template.metadata.generation_method of fallbacks
JSON_TYPES = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
}


def _part(body: dict, key: str) -> dict:
    value = body.get(key)
    return value if isinstance(value, dict) else {}


def _strings(value: object) -> list[str]:
    """A JSON list's items as strings; anything else gives none."""
    return [str(v) for v in value] if isinstance(value, list) else []


def not_an_object(body: object) -> list[str]:
    """The answer must be a JSON object (a list, a string, a number is a failure)."""
    if isinstance(body, dict):
        return []
    if body is None:
        return ["the answer is not a JSON object (no JSON body)"]
    return [f"the answer is JSON but not an object: {JSON_TYPES.get(type(body), 'a value')}"]


def compliance_score(body: object) -> float | None:
    """`compliance.score` of a /generate answer, or None when there is none."""
    if not isinstance(body, dict):
        return None
    score = _part(body, "compliance").get("score")
    return score if isinstance(score, int | float) and not isinstance(score, bool) else None


def fallback_tells(body: dict) -> list[str]:
    """What shows that the answer came from the service's fallback path, not the LLM.

    The real service answers 200, `success: true` and a compliant-looking score
    (85.5) when its LLM is down (SERVICE.md); the substance tells: a notice without
    any `#{...}` variable (the request analyzer always asks for `수신자명`), a text
    that reports its own failure, a violation saying the compliance step failed, a
    fallback `generation_method`, a failed request analysis.
    """
    tpl, comp, analysis = (
        _part(body, "template"),
        _part(body, "compliance"),
        _part(body, "analysis"),
    )
    text = str(tpl.get("text") or "")
    found: list[str] = []
    if text.strip() and not used(text):
        found.append(
            "the template has no #{...} variable, yet the service always asks for "
            "#{수신자명} (fallback answer?)"
        )
    said = FAILURE_TEXT.search(text)
    if said:
        line = next(ln for ln in text.splitlines() if said.group(0) in ln).strip()
        found.append(f"the template text reports a failure: {line[:80]!r} (fallback answer?)")
    for violation in _strings(comp.get("violations")):
        if CHECK_FAILED.search(violation):
            found.append(f"a compliance violation says the check itself failed: {violation[:80]!r}")
    method = _part(tpl, "metadata").get("generation_method")
    if method in FALLBACK_METHODS:
        found.append(f"template.metadata.generation_method is {method!r} (fallback path)")
    for concern in _strings(analysis.get("compliance_concerns")):
        if "분석 실패" in concern:
            found.append(f"the request analysis failed: {concern[:80]!r}")
    return found


def generation_problems(body: object, required: list[str], min_score: float) -> list[str]:
    """What is wrong with a /generate answer, judged on substance, not on `success`.

    Beyond the template rules: the variables an operator required (none by default:
    the real service ignores `required_variables`), the fallback tells, a score
    under `min_score`, the workflow's own errors, and no policy sources (retrieval
    did not run: the embeddings are down).
    """
    if not isinstance(body, dict):
        return not_an_object(body)
    if body.get("success") is not True:
        return [f"success is {body.get('success')!r}"]
    tpl, flow = _part(body, "template"), _part(body, "workflow_info")
    found: list[str] = []
    if not isinstance(tpl.get("variables", []), list):
        found.append("template.variables is not a list")
    template = Template(
        str(tpl.get("text") or ""),
        _strings(tpl.get("variables")),
        str(tpl.get("button_suggestion") or ""),
    )
    found += problems(template)
    missing = [v for v in required if v not in used(template.text)]
    if missing:
        found.append(f"required variables missing from the text: {', '.join(missing)}")
    found += fallback_tells(body)
    score = compliance_score(body)
    if score is None:
        found.append("no compliance score in the answer")
    elif score < min_score:
        found.append(f"compliance score is {score:g}, minimum {min_score:g}")
    errors = flow.get("errors")
    if errors:
        shown = "; ".join(str(e)[:120] for e in _strings(errors)[:3]) or str(errors)[:120]
        found.append(f"the workflow reports errors (fallback answer?): {shown}")
    if not flow.get("policy_sources"):
        found.append("no policy sources: retrieval did not run (fallback answer?)")
    return found
