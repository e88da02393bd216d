"""The AlimTalk rules, one by one."""

from opscheck import alimtalk as a
from opscheck.alimtalk import Template

GOOD = Template(
    "안녕하세요 #{고객명}님, 주문 #{주문번호}이 접수되었습니다.",
    ["고객명", "주문번호"],
    "주문 확인",
)


def test_good_template_has_no_problems():
    assert a.problems(GOOD) == []


def test_body_length():
    assert a.body_length(Template("가" * 1000)) == []
    assert a.body_length(Template("가" * 1001)) == ["body is 1001 characters, limit 1000"]


def test_variable_syntax():
    assert a.variable_syntax(GOOD) == []
    assert a.variable_syntax(Template("#{} 안내")) == ["malformed variable #{}"]
    assert a.variable_syntax(Template("#{고객-명} 안내")) == ["malformed variable #{고객-명}"]
    assert a.variable_syntax(Template("안녕 #{고객명 님")) == [
        "malformed variable syntax in '안녕 #{고객명 님'"
    ]
    assert a.variable_syntax(Template("안녕 ${name} 님")) == [
        "malformed variable syntax in '안녕 ${name} 님'"
    ]
    assert a.variable_syntax(Template("안녕 {{name}} 님")) != []


def test_declared_variables_match_the_text():
    assert a.declared_match_text(Template("#{a} 안내", ["a", "b"])) == [
        "declared but not in the text: b"
    ]
    assert a.declared_match_text(Template("#{a} #{c} 안내", ["a"])) == [
        "in the text but not declared: c"
    ]


def test_at_most_forty_variables():
    text = " ".join(f"#{{v{n}}}" for n in range(41)) + " 안내"
    assert a.variable_count(Template(text)) == ["41 variables, limit 40"]
    assert a.variable_count(Template(" ".join(f"#{{v{n}}}" for n in range(40)))) == []


def test_not_only_variables():
    assert a.not_only_variables(Template("#{a} #{b}, #{c}!")) == [
        "the body is made only of variables"
    ]
    assert a.not_only_variables(Template("#{a} 님 안내")) == []


def test_no_variable_in_button():
    assert a.no_variable_in_button(Template("x", button="#{상품명} 보기")) == [
        "variable in the button name '#{상품명} 보기'"
    ]
    assert a.no_variable_in_button(GOOD) == []


def test_empty_body():
    assert a.problems(Template("  ")) == ["the body is empty"]


# The real service's answer with its LLM answering 500 or 401 (shared/SERVICE.md).
REAL_FALLBACK = {
    "success": True,
    "template": {
        "text": "안녕하세요 템플릿 생성에 실패했습니다.\n\n"
        "※ 이 메시지는 주문을 하신 분들께 발송되는 정보성 안내입니다.",
        "variables": [],
        "button_suggestion": "",
        "metadata": {"generation_method": "ai_generated"},
    },
    "compliance": {
        "is_compliant": True,
        "score": 85.5,
        "approval_probability": "보통",
        "violations": ["정보성 메시지 표시가 없습니다", "컴플라이언스 검사 실패"],
    },
    "analysis": {"message_purpose": "일반 안내"},
    "workflow_info": {
        "iterations": 1,
        "errors": [],
        "policy_sources": [
            "operations.md",
            "audit.md",
            "content-guide.md",
            "publictemplate.md",
            "infotalk.md",
            "white-list.md",
        ],
    },
}


def healthy(text: str, variables: list[str], violations: list[str] | None = None) -> dict:
    """An answer as the real service gives it with its LLM up."""
    return {
        "success": True,
        "template": {
            "text": text,
            "variables": variables,
            "button_suggestion": "주문 내역 보기",
            "metadata": {"generation_method": "ai_generated", "business_type": "음식점"},
        },
        "compliance": {"is_compliant": True, "score": 92.0, "violations": violations or []},
        "analysis": {"message_purpose": "주문 완료 안내", "required_variables": ["수신자명"]},
        "workflow_info": {"iterations": 1, "errors": [], "policy_sources": ["audit.md"]},
    }


PIZZA = healthy(
    "안녕하세요 #{수신자명}님,\n주문하신 피자가 정상적으로 접수되었습니다.\n"
    "조리가 시작되면 다시 안내해 드리겠습니다.\n\n"
    "※ 이 메시지는 주문을 하신 분들께 발송되는 정보성 안내입니다.",
    ["수신자명"],
)


def test_the_real_fallback_answer_fails_on_its_substance():
    assert a.generation_problems(REAL_FALLBACK, [], 80) == [
        "the template has no #{...} variable, yet the service always asks for "
        "#{수신자명} (fallback answer?)",
        "the template text reports a failure: '안녕하세요 템플릿 생성에 실패했습니다.' "
        "(fallback answer?)",
        "a compliance violation says the check itself failed: '컴플라이언스 검사 실패'",
    ]


def test_realistic_healthy_answers_pass():
    assert a.generation_problems(PIZZA, [], 80) == []
    booking = healthy(
        "안녕하세요 #{수신자명}님, #{날짜} 진료 예약이 확정되었습니다.\n"
        "문의: #{연락처}\n※ 이 메시지는 예약을 하신 분들께 발송되는 정보성 안내입니다.",
        ["수신자명", "날짜", "연락처"],
        ["정보성 메시지 표시가 없습니다"],  # a rule's violation, not a failed check
    )
    assert a.generation_problems(booking, [], 80) == []


def test_a_notice_about_a_failed_payment_is_not_a_failed_generation():
    notice = healthy(
        "안녕하세요 #{수신자명}님, 결제가 실패했습니다.\n"
        "결제 처리 중 오류가 발생하여 주문이 접수되지 않았습니다. 다시 시도해 주세요.",
        ["수신자명"],
    )
    assert a.generation_problems(notice, [], 80) == []


def test_each_fallback_tell_on_its_own():
    assert a.fallback_tells(PIZZA) == []
    no_variable = healthy("주문이 접수되었습니다. 감사합니다.", [])
    assert a.fallback_tells(no_variable) == [
        "the template has no #{...} variable, yet the service always asks for "
        "#{수신자명} (fallback answer?)"
    ]
    failed = healthy("안녕하세요 #{수신자명}님, 템플릿 생성 중 오류가 발생했습니다.", ["수신자명"])
    assert a.fallback_tells(failed) == [
        "the template text reports a failure: '안녕하세요 #{수신자명}님, 템플릿 생성 중 "
        "오류가 발생했습니다.' (fallback answer?)"
    ]
    check = healthy(PIZZA["template"]["text"], ["수신자명"], ["검증 중 오류 발생: timeout"])
    assert a.fallback_tells(check) == [
        "a compliance violation says the check itself failed: '검증 중 오류 발생: timeout'"
    ]
    canned = healthy(PIZZA["template"]["text"], ["수신자명"])
    canned["template"]["metadata"]["generation_method"] = "fallback"
    canned["analysis"]["compliance_concerns"] = ["분석 실패로 인한 수동 검토 필요"]
    assert a.fallback_tells(canned) == [
        "template.metadata.generation_method is 'fallback' (fallback path)",
        "the request analysis failed: '분석 실패로 인한 수동 검토 필요'",
    ]


def test_required_variables_are_demanded_only_when_set():
    assert a.generation_problems(PIZZA, ["주문번호"], 80) == [
        "required variables missing from the text: 주문번호"
    ]


def test_answers_that_are_not_objects_or_have_parts_of_the_wrong_type():
    assert a.generation_problems([PIZZA], [], 80) == [
        "the answer is JSON but not an object: an array"
    ]
    assert a.generation_problems("ok", [], 80) == ["the answer is JSON but not an object: a string"]
    assert a.generation_problems(3, [], 80) == ["the answer is JSON but not an object: a number"]
    assert a.generation_problems(None, [], 80) == ["the answer is not a JSON object (no JSON body)"]
    odd = {**PIZZA, "template": {**PIZZA["template"], "variables": "수신자명"}}
    odd["compliance"] = {"score": True, "violations": "컴플라이언스 검사 실패"}
    assert a.generation_problems(odd, [], 80) == [
        "template.variables is not a list",
        "in the text but not declared: 수신자명",
        "no compliance score in the answer",
    ]
    assert a.compliance_score([1]) is None
    assert a.compliance_score(PIZZA) == 92.0
