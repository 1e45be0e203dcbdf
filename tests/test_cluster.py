"""cluster/: the launcher YAML passes Ray's own config validator; the KubeRay manifests parse and
agree with each other and with the job's command line."""

import importlib.util
import json
import shlex
from pathlib import Path

import pytest
import yaml

from sa0.train.recipes import recipe

CLUSTER = Path(__file__).resolve().parents[1] / "cluster"


def _docs(name):
    return list(yaml.safe_load_all((CLUSTER / "kuberay" / name).read_text()))


def test_launcher_yaml_passes_rays_validator():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(yaml.safe_load((CLUSTER / "aws-gpu.yaml").read_text()))
    validate_config(config)
    workers = config["available_node_types"]["gpu_worker"]
    gpus = workers["resources"]["GPU"] * workers["max_workers"]
    assert gpus >= recipe("cluster").train.num_workers
    assert any("/mnt/shared" in c for c in config["initialization_commands"])
    assert recipe("cluster").train.storage_path.startswith("/mnt/shared/")


def test_launcher_validator_rejects_a_broken_config():
    from ray.autoscaler._private.util import prepare_config, validate_config

    broken = yaml.safe_load((CLUSTER / "aws-gpu.yaml").read_text())
    broken["head_node_type"] = "no_such_type"
    with pytest.raises(ValueError, match="head_node_type"):
        validate_config(prepare_config(broken))


def test_kuberay_manifests_agree():
    import ray

    (cluster,) = _docs("raycluster.yaml")
    (job,) = _docs("rayjob.yaml")
    (pvc,) = _docs("storage.yaml")
    deployment, service = _docs("mlflow.yaml")
    assert (cluster["apiVersion"], cluster["kind"], job["apiVersion"], job["kind"]) == (
        "ray.io/v1", "RayCluster", "ray.io/v1", "RayJob")
    assert cluster["spec"]["rayVersion"] == ray.__version__
    assert job["spec"]["clusterSelector"]["ray.io/cluster"] == cluster["metadata"]["name"]
    group = cluster["spec"]["workerGroupSpecs"][0]
    container = group["template"]["spec"]["containers"][0]
    gpus = int(container["resources"]["limits"]["nvidia.com/gpu"]) * group["maxReplicas"]
    assert gpus >= recipe("cluster").train.num_workers
    pods = [cluster["spec"]["headGroupSpec"]["template"]["spec"], group["template"]["spec"],
            deployment["spec"]["template"]["spec"]]
    for pod in pods:
        claims = [v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v]
        assert claims == [pvc["metadata"]["name"]]
        assert {"name": "shared", "mountPath": "/mnt/shared"} in pod["containers"][0]["volumeMounts"]
    assert "ReadWriteMany" in pvc["spec"]["accessModes"]
    assert service["spec"]["ports"][0]["port"] == 5000 and "http://sa0-mlflow:5000" in job["spec"]["entrypoint"]


def test_rayjob_entrypoint_is_accepted_by_the_job(capsys):
    (job,) = _docs("rayjob.yaml")
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[:2] == ["python", "jobs/train_generator.py"]
    path = CLUSTER.parent / "jobs" / "train_generator.py"
    spec = importlib.util.spec_from_file_location("train_generator_job", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit) as stop:  # --print-config exits as --help does
        module.main(argv[2:] + ["--print-config"])
    assert stop.value.code == 0
    config = json.loads(capsys.readouterr().out)
    assert config["recipe"] == "cluster" and config["train"]["storage_path"] == "/mnt/shared/sa0/runs"
    assert config["phase1"]["data"]["shard_dirs"] == ["/mnt/shared/shards/celebvhq"]
    assert config["model"]["encoder_weights"] == "/mnt/shared/weights/dinov3_vitb16.pth"
