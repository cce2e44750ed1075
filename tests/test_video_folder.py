"""Video files: writing and reading with OpenCV, frame sampling, streaming, and the video-folder
dataset (class folders or CSV, corrupt files, empty classes, splits, the decoded-clip cache).

Every video is written by the test. Frame i of an "index video" is a flat grey of level 10 + 20·i,
so a decoded frame tells which source frame it was (mp4v and MJPG are lossy: a few levels off).
"""

import os
import warnings

import numpy as np
import pytest

from evaluation.datasets import (
    DatasetWarning,
    iter_frames,
    load_dataset,
    read_video,
    video_folder,
    write_video,
)


def index_video(n=12, h=24, w=32, tint=(1.0, 1.0, 1.0)):
    levels = 10 + 20 * np.arange(n)
    return np.stack(
        [np.full((h, w, 3), np.multiply(level, tint), np.float64).astype(np.uint8) for level in levels]
    )


def frame_indices(clip: np.ndarray) -> list[int]:
    """Source frame of each decoded frame of an index video (grey level, within lossy error)."""
    return [round((level * 255 - 10) / 20) for level in clip.mean((1, 2, 3))]


def record_warnings(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*args, **kwargs)
    return result, [str(w.message) for w in caught if issubclass(w.category, DatasetWarning)]


def corrupt(path):
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    return path


# -- single files --------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".mp4", ".avi"])
def test_written_video_reads_back_as_rgb_float_frames(tmp_path, ext):
    frames = index_video()
    frames[..., 2] = 0  # no blue: a BGR/RGB swap would show
    path = write_video(tmp_path / f"v{ext}", frames)
    clip = read_video(path)
    assert clip.shape == (12, 24, 32, 3) and clip.dtype == np.float32
    assert 0.0 <= clip.min() and clip.max() <= 1.0
    assert np.abs(clip - frames / 255.0).mean() < 0.03
    assert clip[..., 2].mean() < 0.03 < clip[..., 0].mean()


@pytest.mark.parametrize("ext", [".mp4", ".avi"])
def test_stride_takes_every_kth_frame(tmp_path, ext):
    path = write_video(tmp_path / f"v{ext}", index_video())
    assert frame_indices(read_video(path, frames=4, stride=3)) == [0, 3, 6, 9]


def test_fps_sampling_steps_by_source_rate_over_target_rate(tmp_path):
    path = write_video(tmp_path / "v.mp4", index_video(), fps=25)
    assert frame_indices(read_video(path, frames=3, fps=5)) == [0, 5, 10]
    assert frame_indices(read_video(path, frames=4, fps=10)) == [0, 2, 5, 7]  # ⌊i · 2.5⌋
    assert frame_indices(read_video(path, fps=50))[:5] == [0, 0, 1, 1, 2]  # above the source rate


def test_short_video_is_padded_with_its_last_sampled_frame(tmp_path):
    path = write_video(tmp_path / "v.avi", index_video())
    assert frame_indices(read_video(path, frames=6, stride=4)) == [0, 4, 8, 8, 8, 8]


def test_resolution_centre_crops_then_resizes(tmp_path):
    frames = index_video(n=3, h=24, w=40)
    frames[:, :, :8] = (255, 0, 0)  # red side bands fall outside the centre square
    frames[:, :, -8:] = (255, 0, 0)
    clip = read_video(write_video(tmp_path / "v.avi", frames), resolution=16)
    assert clip.shape == (3, 16, 16, 3)
    assert np.abs(clip[..., 0] - clip[..., 2]).max() < 0.1  # still grey: no red left


def test_iter_frames_streams_the_frames_read_video_returns(tmp_path):
    path = write_video(tmp_path / "v.mp4", index_video())
    streamed = list(iter_frames(path, resolution=16))
    assert len(streamed) == 12 and streamed[0].shape == (16, 16, 3) and streamed[0].dtype == np.float32
    np.testing.assert_array_equal(np.stack(streamed), read_video(path, resolution=16))


def test_iter_frames_leaves_a_given_capture_open(tmp_path):
    import cv2

    capture = cv2.VideoCapture(str(write_video(tmp_path / "v.mp4", index_video())))
    first_two = [f for _, f in zip(range(2), iter_frames(capture))]
    assert len(first_two) == 2 and capture.isOpened()
    assert frame_indices(np.stack(list(iter_frames(capture)))) == list(range(2, 12))
    capture.release()


def test_missing_and_corrupt_files_raise_errors_naming_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.mp4"):
        read_video(tmp_path / "nothing.mp4")
    with pytest.raises(FileNotFoundError, match="nothing.mp4"):
        iter_frames(tmp_path / "nothing.mp4")  # raised on the call, before iterating
    bad = corrupt(tmp_path / "bad.mp4")
    with pytest.raises(ValueError, match="bad.mp4"):
        read_video(bad)
    with pytest.raises(ValueError, match="bad.mp4"):
        list(iter_frames(bad))


def test_bad_sampling_arguments_are_named(tmp_path):
    path = write_video(tmp_path / "v.mp4", index_video(n=2))
    with pytest.raises(ValueError, match="fps: 5 together with stride: 2"):
        read_video(path, stride=2, fps=5)
    with pytest.raises(ValueError, match="stride: 0"):
        read_video(path, stride=0)


# -- the video-folder dataset ---------------------------------------------------------------------

TINTS = {"jump": (1.0, 0.2, 0.2), "run": (0.2, 0.2, 1.0)}  # reddish and bluish classes


@pytest.fixture
def class_folders(tmp_path):
    """jump/ 3 videos, run/ 3 videos + 1 corrupt, empty/ nothing, notes/ a text file."""
    root = tmp_path / "videos"
    for name, tint in TINTS.items():
        (root / name).mkdir(parents=True)
        for i, ext in enumerate([".mp4", ".avi", ".mp4"]):
            write_video(root / name / f"{name}{i}{ext}", index_video(n=10, tint=tint))
    corrupt(root / "run" / "broken.mp4")
    (root / "empty").mkdir()
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("not a video")
    return root


def test_folder_classes_are_the_sorted_non_empty_sub_folders(class_folders):
    ds, _ = record_warnings(video_folder, class_folders, frames=4, resolution=16, stride=2)
    assert ds.class_names == ("jump", "run") and ds.name == "videos"
    assert len(ds.train.y) + len(ds.val.y) == 6
    assert ds.train.x.shape[1:] == (4, 16, 16, 3) and ds.train.x.dtype == np.float32
    for clips in (ds.train, ds.val):  # each clip carries its own folder's label
        redder = clips.x[..., 0].mean((1, 2, 3)) > clips.x[..., 2].mean((1, 2, 3))
        assert (redder == (clips.y == ds.class_names.index("jump"))).all()


def test_corrupt_file_is_skipped_with_one_warning_and_counted(class_folders):
    ds, messages = record_warnings(video_folder, class_folders, frames=4, resolution=16)
    broken = str(class_folders / "run" / "broken.mp4")
    assert ds.skipped == (broken,)
    assert sum(broken in m for m in messages) == 1


def test_empty_class_folders_are_skipped_with_a_warning(class_folders):
    _, messages = record_warnings(video_folder, class_folders, frames=4, resolution=16)
    assert any(str(class_folders / "empty") in m for m in messages)
    assert any(str(class_folders / "notes") in m for m in messages)


def test_split_is_stratified_and_follows_the_seed(class_folders):
    a, _ = record_warnings(video_folder, class_folders, frames=2, resolution=8, val_fraction=0.34, seed=0)
    assert np.bincount(a.val.y).tolist() == [1, 1] and np.bincount(a.train.y).tolist() == [2, 2]
    b, _ = record_warnings(video_folder, class_folders, frames=2, resolution=8, val_fraction=0.34, seed=0)
    np.testing.assert_array_equal(a.val.x, b.val.x)
    assert any(
        not np.array_equal(
            a.val.x, record_warnings(video_folder, class_folders, frames=2, resolution=8, seed=s)[0].val.x
        )
        for s in (1, 2, 3)
    )


def test_csv_source_with_relative_paths_and_optional_header(class_folders):
    lines = [
        "jump/jump0.mp4,jump",
        "jump/jump1.avi,jump",
        "run/run0.mp4,run",
        "run/run1.avi,run",
        "run/gone.mp4,run",
    ]
    for header in ([], ["path,label"]):
        csv = class_folders / "list.csv"
        csv.write_text("\n".join(header + lines) + "\n")
        ds, messages = record_warnings(video_folder, csv, frames=3, resolution=16)
        assert ds.class_names == ("jump", "run") and ds.name == "list"
        assert len(ds.train.y) + len(ds.val.y) == 4
        assert ds.skipped == (str(class_folders / "run" / "gone.mp4"),) and any(
            "gone.mp4" in m for m in messages
        )


def test_missing_source_raises_file_not_found_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_folder"):
        video_folder(tmp_path / "no_such_folder")


def test_all_unreadable_raises_value_error_naming_the_folder(tmp_path):
    root = tmp_path / "allbad"
    (root / "a").mkdir(parents=True)
    corrupt(root / "a" / "x.mp4")
    corrupt(root / "a" / "y.avi")
    with pytest.raises(ValueError, match=f"{root}: no readable videos"):
        record_warnings(video_folder, root)


def test_cache_serves_clips_without_decoding_and_follows_file_changes(class_folders, tmp_path):
    cache = tmp_path / "cache"
    first, _ = record_warnings(video_folder, class_folders, frames=4, resolution=16, cache_dir=cache)
    assert len(list(cache.glob("*.npy"))) == 6  # one per readable video; the corrupt one is not cached

    # Replace every video by garbage of the same size and time stamp: only the cache can still serve them.
    videos = [p for p in class_folders.rglob("*") if p.suffix in (".mp4", ".avi") and p.name != "broken.mp4"]
    for video in videos:
        stat = video.stat()
        video.write_bytes(b"\0" * stat.st_size)
        os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again, _ = record_warnings(video_folder, class_folders, frames=4, resolution=16, cache_dir=cache)
    np.testing.assert_array_equal(first.train.x, again.train.x)
    assert again.skipped == first.skipped

    # A changed file (new time stamp) is decoded again: the garbage is now seen and skipped.
    os.utime(videos[0], ns=(videos[0].stat().st_atime_ns, videos[0].stat().st_mtime_ns + 10**9))
    changed, _ = record_warnings(video_folder, class_folders, frames=4, resolution=16, cache_dir=cache)
    assert str(videos[0]) in changed.skipped


def test_decoding_shows_a_bar_of_the_files_on_a_terminal_or_when_asked(class_folders, capsys):
    record_warnings(video_folder, class_folders, frames=4, resolution=16, progress=True)
    err = capsys.readouterr().err
    assert "decoding videos: 100%" in err and "7/7" in err  # 6 readable videos and the corrupt one
    record_warnings(video_folder, class_folders, frames=4, resolution=16, progress=False)
    record_warnings(video_folder, class_folders, frames=4, resolution=16)  # default: pytest's stderr is no terminal
    assert "decoding" not in capsys.readouterr().err


def test_load_dataset_builds_a_video_folder_relative_to_base_dir(class_folders):
    config = {"kind": "video_folder", "source": "videos", "frames": 3, "resolution": 16, "fps": 5}
    ds, _ = record_warnings(load_dataset, config, base_dir=class_folders.parent)
    assert ds.class_names == ("jump", "run") and ds.frames == 3
    with pytest.raises(ValueError, match=r"^dataset\.source: .*elsewhere"):
        load_dataset({"kind": "video_folder", "source": "elsewhere"}, base_dir=class_folders.parent)
    with pytest.raises(ValueError, match=r"^dataset\.fps: 5 together with stride: 2"):
        load_dataset({"kind": "video_folder", "source": str(class_folders), "stride": 2, "fps": 5})


def test_class_with_only_unreadable_files_is_dropped_with_a_warning(class_folders):
    (class_folders / "fall").mkdir()
    corrupt(class_folders / "fall" / "f.mp4")
    ds, messages = record_warnings(video_folder, class_folders, frames=2, resolution=8)
    assert ds.class_names == ("jump", "run")
    assert any("'fall'" in m and "dropped" in m for m in messages)


def test_malformed_csv_row_is_named_by_line(tmp_path):
    csv = tmp_path / "list.csv"
    csv.write_text("path,label\na.mp4,jump\nb.mp4\n")
    with pytest.raises(ValueError, match=r"list\.csv:3: expected 'path,label'"):
        video_folder(csv)
