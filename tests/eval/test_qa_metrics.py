import pytest

from vlarm.eval.qa.metrics import format_metric, hooa_scores, parse_answer


@pytest.mark.parametrize("text, expected", [
    ("Yes", "yes"), ("yes, it is.", "yes"), ("YES!", "yes"), ("  Yeah  ", "yes"), ("True", "yes"),
    ("No", "no"), ("no.", "no"), ("No, it is not.", "no"), ("It is not red.", "no"), ("Nope", "no"),
    ("It isn't.", "no"), ("It isn\u2019t red", "no"), ("That's false", "no"), ("Yes, it is not red", "yes"),
    ("The block is red.", None), ("", None), ("maybe", None), ("?!", None),
    (True, "yes"), (False, "no"), (1, "yes"), (0, "no"), (2, None),
])
def test_parse_answer(text, expected):
    assert parse_answer(text) == expected


def test_parse_answer_refuses_other_types():
    with pytest.raises(TypeError, match="NoneType"):
        parse_answer(None)
    with pytest.raises(TypeError, match="float"):
        parse_answer(0.7)


def test_scores_by_hand():
    labels = ["yes"] * 4 + ["no"] * 4
    preds = ["Yes", "yes.", "Yes, it is", "No", "no", "No.", "yes", "Yes!"]   # 3/4 positives, 2/4 negatives right
    s = hooa_scores(preds, labels)
    assert s["positive_accuracy"]["value"] == 0.75 and s["negative_accuracy"]["value"] == 0.5
    assert s["hooa"]["value"] == pytest.approx(0.625)
    assert s["accuracy"]["value"] == pytest.approx(5 / 8)
    assert (s["tp"], s["fp"], s["tn"], s["fn"]) == (3, 2, 2, 1)
    assert s["precision"]["value"] == pytest.approx(3 / 5) and s["recall"]["value"] == pytest.approx(3 / 4)
    assert s["f1"]["value"] == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))
    assert s["yes_ratio"]["value"] == pytest.approx(5 / 8)
    assert s["unparseable"] == 0 and s["n"] == 8
    for name in ("hooa", "accuracy", "precision", "recall", "f1", "yes_ratio"):
        low, high = s[name]["ci"]
        assert 0 <= low <= s[name]["value"] <= high <= 1, name


def test_unparseable_answers_are_wrong_and_counted():
    labels = ["yes", "no", "yes", "no"]
    s = hooa_scores(["maybe", "The block is red.", "yes", "no"], labels)
    assert s["unparseable"] == 2
    assert s["accuracy"]["value"] == 0.5 and s["hooa"]["value"] == 0.5
    assert s["yes_ratio"]["value"] == 0.25          # an unparseable answer is not a yes
    assert s["fn"] == 1 and s["tn"] == 1           # the unparseable positive counts as a missed yes


def test_count_mismatch_is_refused():
    labels = ["yes", "no"] * 1500
    with pytest.raises(ValueError, match=r"2,910 predictions for 3,000 labels"):
        hooa_scores(["yes"] * 2910, labels)
    with pytest.raises(ValueError, match="no predictions"):
        hooa_scores([], [])
    with pytest.raises(ValueError, match="pair ids"):
        hooa_scores(["yes"], ["yes"], pairs=[0, 1])


def test_bad_label_names_it():
    with pytest.raises(ValueError, match="label 1"):
        hooa_scores(["yes", "yes"], ["yes", "perhaps"])


def test_always_yes_has_yes_bias_signature():
    labels = ["yes", "no"] * 50
    s = hooa_scores(["Yes"] * 100, labels, pairs=[i // 2 for i in range(100)])
    assert s["hooa"]["value"] == 0.5 and s["yes_ratio"]["value"] == 1.0
    assert s["recall"]["value"] == 1.0 and s["precision"]["value"] == 0.5
    assert s["f1"]["value"] == pytest.approx(2 / 3)
    assert s["hooa"]["ci"] == [0.5, 0.5]           # every pair scores exactly one half


def test_balanced_hooa_equals_accuracy_and_paired_interval_is_sane():
    labels = ["yes", "no"] * 200
    preds = ["yes" if (i % 3) else "no" for i in range(400)]
    paired = hooa_scores(preds, labels, pairs=[i // 2 for i in range(400)])
    unpaired = hooa_scores(preds, labels)
    assert paired["hooa"]["value"] == pytest.approx(paired["accuracy"]["value"])
    for s in (paired, unpaired):
        low, high = s["hooa"]["ci"]
        assert low < s["hooa"]["value"] < high and high - low < 0.15
    assert paired["hooa"]["value"] == unpaired["hooa"]["value"]


def test_undefined_metrics():
    s = hooa_scores(["no", "no"], ["yes", "yes"])
    assert s["hooa"]["value"] is None and s["negative_accuracy"]["value"] is None
    assert s["precision"]["value"] is None and s["f1"]["value"] == 0.0
    assert format_metric(s["precision"]) == "-"
    assert format_metric({"value": 0.775, "ci": [0.741, 0.806]}) == "77.5 [74.1, 80.6]"
