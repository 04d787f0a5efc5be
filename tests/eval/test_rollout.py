import json

from vlarm.eval import OracleAgent, evaluate


def test_oracle_evaluation_writes_results_and_video(tmp_path):
    results = evaluate(OracleAgent, "put-block-in-bowl-unseen-colors", "test", 2, tmp_path, videos=1,
                       camera_scale=0.5, progress=False, label="oracle")
    assert results["score"] > 99 and results["success_rate"] == 100.0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert {"score", "success_rate", "per_episode"} <= set(saved)
    assert [r["seed"] for r in saved["per_episode"]] == [10001, 10003]
    assert "| 2 |" in (tmp_path / "results.md").read_text()
    videos = list((tmp_path / "videos").glob("*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 1000
