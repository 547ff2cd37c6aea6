from app.domain.outbox import MAX_WAIT_SECONDS, backoff_seconds, gives_up


def test_the_backoff_doubles_and_is_capped():
    assert [backoff_seconds(n, base=2) for n in range(4)] == [2, 4, 8, 16]
    assert backoff_seconds(30, base=2) == MAX_WAIT_SECONDS


def test_an_email_gets_one_attempt_plus_its_retries():
    assert not gives_up(1, max_retries=2)
    assert not gives_up(2, max_retries=2)
    assert gives_up(3, max_retries=2)
    assert gives_up(1, max_retries=0)
