from stream.schedule import DueSchedule

T1, T2, T3 = (
    "2026-11-26T10:00:00.000000+00:00",
    "2026-11-26T11:00:00.000000+00:00",
    "2026-11-26T12:00:00.000000+00:00",
)


def test_schedule_pop_due_returns_only_due_keys_in_time_order_and_removes_them() -> None:
    schedule = DueSchedule()
    schedule.load(3, [(T3, "c"), (T1, "a"), (T2, "b")])
    assert schedule.pop_due(3, T2) == ["a", "b"]
    assert schedule.pop_due(3, T2) == []
    assert schedule.pop_due(3, T3) == ["c"]


def test_schedule_partitions_are_separate_and_unloaded_ones_ignore_adds() -> None:
    schedule = DueSchedule()
    schedule.add(1, "x", T1)  # not loaded: the table is read when the partition is first ticked
    assert not schedule.loaded(1) and schedule.pop_due(1, T3) == []
    schedule.load(1, [])
    schedule.load(2, [(T1, "y")])
    schedule.add(1, "x", T1)
    assert schedule.pop_due(1, T3) == ["x"] and schedule.pop_due(2, T3) == ["y"]


def test_schedule_key_added_twice_is_returned_once() -> None:
    schedule = DueSchedule()
    schedule.load(0, [(T1, "a")])
    schedule.add(0, "a", T2)
    assert schedule.pop_due(0, T3) == ["a"]


def test_schedule_forget_drops_every_partition() -> None:
    schedule = DueSchedule()
    schedule.load(0, [(T1, "a")])
    schedule.forget()
    assert not schedule.loaded(0) and schedule.pop_due(0, T3) == []
