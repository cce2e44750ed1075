"""`movinas videos OUT`: a folder of real video files that `video_folder` reads back as the
synthetic motion classes."""

import re

import numpy as np

from evaluation.datasets import read_video, video_folder
from evaluation.datasets.synthetic_folder import write_synthetic_folder
from nas.cli import main


def test_written_folder_reads_back_as_the_motion_classes(tmp_path, capsys):
    code = main(["videos", str(tmp_path / "v"), "--classes", "3", "--clips", "4", "--frames", "6",
                 "--resolution", "32", "--format", "avi"])
    assert code == 0
    assert "wrote 12 videos (3 classes × 4" in capsys.readouterr().out
    data = video_folder(tmp_path / "v", frames=6, resolution=32, fps=5)
    assert data.class_names == ("clockwise", "left", "right")  # sub-folders, sorted
    assert len(data.train.x) + len(data.val.x) == 12
    clip = read_video(tmp_path / "v/right/right_0000.avi")
    assert clip.shape == (6, 32, 32, 3) and clip.std() > 0.05  # real pictures, not blank frames


def test_same_arguments_write_the_same_videos(tmp_path):
    for name in ("a", "b"):
        write_synthetic_folder(tmp_path / name, num_classes=2, clips_per_class=2, frames=4, resolution=32)
    a, b = (read_video(tmp_path / n / "left/left_0001.mp4") for n in ("a", "b"))
    np.testing.assert_array_equal(a, b)


def test_bad_flags_exit_2_naming_the_flag(tmp_path, capsys):
    assert main(["videos", str(tmp_path / "v"), "--classes", "20"]) == 2
    assert re.search(r"--classes: 20, must be (an integer )?in \[2, 11\]", capsys.readouterr().err)
    (tmp_path / "file").write_text("x")
    assert main(["videos", str(tmp_path / "file" / "v")]) == 2
    assert "must be a folder" in capsys.readouterr().err
