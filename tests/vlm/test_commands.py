import json

from vlarm.vlm.commands import vlm_eval, vlm_train


def _csv(tmp_path, toy_pairs):
    from PIL import Image

    imgs, caps = toy_pairs(8)
    lines = ["filepath\ttitle"]
    for i, (img, cap) in enumerate(zip(imgs, caps, strict=True)):
        Image.fromarray(img).save(tmp_path / f"{i}.png")
        lines.append(f"{i}.png\t{cap}")
    (tmp_path / "pairs.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "pairs.csv"


def test_train_then_eval_retrieval_from_csv(tmp_path, toy_pairs):
    csv_path = _csv(tmp_path, toy_pairs)
    out = vlm_train(
        csv_path, tmp_path / "run", model="scratch-vit-tiny", epochs=1, batch_size=4, warmup_steps=1, image_size=16
    )
    assert out["steps"] == 2 and json.loads((tmp_path / "run" / "train_result.json").read_text())["steps"] == 2
    res = vlm_eval(out["checkpoint"], dataset="retrieval", data_csv=csv_path, output_dir=tmp_path / "eval")
    assert 0.0 <= res["retrieval"]["image_retrieval_recall@1"] <= 1.0
    assert (tmp_path / "eval" / "eval_result.json").is_file()
