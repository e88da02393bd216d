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
