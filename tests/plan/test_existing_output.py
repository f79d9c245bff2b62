"""The output-file check Start and `lora-tui train` share: which LoRA files a run would overwrite, and the first
free `<output_name>_N`."""
from __future__ import annotations

from lora_tui.config.model import TrainingConfig
from lora_tui.plan.outputs import existing_outputs, existing_outputs_phrase, free_output_name


def test_existing_outputs_final_and_epoch_files(tmp_path):
    cfg = TrainingConfig(output_dir=str(tmp_path), output_name="face")
    assert existing_outputs(cfg) == []
    (tmp_path / "face-000002.safetensors").write_bytes(b"x")
    (tmp_path / "face-step00000010.safetensors").write_bytes(b"x")
    (tmp_path / "face-notes.safetensors").write_bytes(b"x")  # not an epoch/step name
    (tmp_path / "face.ckpt").write_bytes(b"x")  # another format than save_model_as
    assert [p.rsplit("/", 1)[1] for p in existing_outputs(cfg)] == [
        "face-000002.safetensors", "face-step00000010.safetensors"]
    (tmp_path / "face.safetensors").write_bytes(b"x")
    assert existing_outputs(cfg)[0] == str(tmp_path / "face.safetensors")
    assert existing_outputs(TrainingConfig(output_dir=str(tmp_path / "missing"), output_name="face")) == []


def test_free_output_name_skips_taken_names(tmp_path):
    (tmp_path / "face.safetensors").write_bytes(b"x")
    (tmp_path / "face_2-000001.safetensors").write_bytes(b"x")
    cfg = TrainingConfig(output_dir=str(tmp_path), output_name="face")
    assert free_output_name(cfg) == "face_3"
    assert free_output_name(TrainingConfig(output_dir=str(tmp_path), output_name="face_2")) == "face_3"
    assert free_output_name(TrainingConfig(output_dir=str(tmp_path), output_name="v_1_9")) == "v_1_10"


def test_the_overwrite_warning_counts_the_epoch_files(tmp_path):
    from lora_tui.plan.dataset import scan_dataset
    from lora_tui.plan.rules import validate

    cfg = TrainingConfig(output_dir=str(tmp_path), output_name="face")

    def warning():
        return next(p.message for p in validate(cfg, scan_dataset(cfg), None) if p.field == "output_name")

    (tmp_path / "face.safetensors").write_bytes(b"x")
    (tmp_path / "face-000001.safetensors").write_bytes(b"x")
    assert "(and 1 epoch/step file 'face-*.safetensors') already exists" in warning()
    (tmp_path / "face-000002.safetensors").write_bytes(b"x")
    assert "(and 2 epoch/step files 'face-*.safetensors') already exists" in warning()


def test_the_overwrite_phrase_agrees_with_its_subject(tmp_path):
    cfg = TrainingConfig(output_dir=str(tmp_path), output_name="face")
    (tmp_path / "face.safetensors").write_bytes(b"x")
    assert existing_outputs_phrase(existing_outputs(cfg)) == f"{tmp_path}/face.safetensors already exists"
    (tmp_path / "face-000001.safetensors").write_bytes(b"x")
    assert existing_outputs_phrase(existing_outputs(cfg)) == (
        f"{tmp_path}/face.safetensors and 1 more file of that name already exist")
    (tmp_path / "face-000002.safetensors").write_bytes(b"x")
    assert existing_outputs_phrase(existing_outputs(cfg)).endswith("and 2 more files of that name already exist")
