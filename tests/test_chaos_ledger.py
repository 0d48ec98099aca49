"""The chaos ledger's e-mail count: only a copy whose sender was killed right
after handing the first one over is excused; every other second copy fails it."""

from pathlib import Path

from chaos.run import mail_copies


def ledger(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "mail-ledger.txt"
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def test_a_second_copy_after_the_first_sender_was_killed_mid_send_is_explained(
    tmp_path: Path,
) -> None:
    path = ledger(tmp_path, "<a> 10", "<b> 11", "<a> 12")
    assert mail_copies(path, killed={10}) == (3, 1, 1)


def test_a_second_copy_from_a_live_sender_is_not(tmp_path: Path) -> None:
    path = ledger(tmp_path, "<a> 10", "<a> 10")
    assert mail_copies(path, killed=set()) == (2, 1, 0)
    assert mail_copies(path, killed={10}) == (2, 1, 0)  # it sent again after the first


def test_a_killed_sender_that_went_on_sending_does_not_excuse_the_copy(tmp_path: Path) -> None:
    path = ledger(tmp_path, "<a> 10", "<b> 10", "<a> 12")
    assert mail_copies(path, killed={10}) == (3, 1, 0)


def test_no_ledger_means_no_mail(tmp_path: Path) -> None:
    assert mail_copies(tmp_path / "missing.txt", killed=set()) == (0, 0, 0)
