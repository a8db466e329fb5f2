"""bench/gpu/check.py, the correctness check meant for a lent GPU machine, runs here on
the providers this machine has, with and without IO binding, and would say so if the
runner's answers differed from ONNX Runtime's on the CPU provider."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.gpu import check


@pytest.mark.parametrize("io_binding", ["auto", "on"])
async def test_the_runners_answers_match_the_cpu_providers(
        io_binding: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    monkeypatch.setenv("INFERQ_IO_BINDING", io_binding)
    assert await check.main(["tiny", "mlp"], tmp_path) == 0
    out = capsys.readouterr().out
    assert f"IO binding {'cpu' if io_binding == 'on' else 'off'}" in out
    assert out.count(" ok ") == 2 * len(check.BATCHES)
    assert "16 concurrent requests ran in batches of [16]" in out


async def test_a_wrong_answer_fails_the_check(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    # A reference that disagrees (every output shifted by one) must fail the check.
    real = check.session

    def shifted(model, threads):  # type: ignore[no-untyped-def]
        s = real(model, threads)

        class Off:
            def run(self, names, feeds):  # type: ignore[no-untyped-def]
                return [v + 1.0 for v in s.run(names, feeds)]
        return Off()

    monkeypatch.setattr(check, "session", shifted)
    assert await check.main(["tiny"], tmp_path) == 1
    assert "WRONG" in capsys.readouterr().out
