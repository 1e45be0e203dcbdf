"""Orbits: about the world's vertical by default, about the camera's own image vertical on request."""

import math

import numpy as np
import torch

from sa0.geometry.camera import camera_up, look_at, orbit


def _turn(axis, degrees) -> np.ndarray:
    k = np.asarray(axis, np.float64) / np.linalg.norm(axis)
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    a = math.radians(degrees)
    out = np.eye(4)
    out[:3, :3] = np.eye(3) + math.sin(a) * cross + (1 - math.cos(a)) * cross @ cross
    return out


def test_the_camera_axis_orbit_is_the_world_orbit_for_a_level_camera_only():
    pivot = np.array([0.01, -0.02, 0.03])
    level = look_at(torch.tensor([[0.0, 0.0, 0.6]]), torch.tensor([[0.0, 0.0, 0.0]]))[0].double().numpy()
    above = look_at(torch.tensor([[0.0, 0.2, 0.6]]), torch.tensor([[0.0, 0.0, 0.0]]))[0].double().numpy()
    np.testing.assert_allclose(camera_up(level), [0.0, 1.0, 0.0], atol=1e-12)
    for yaw in (30.0, -60.0):
        np.testing.assert_allclose(orbit(level, pivot, yaw, axis=camera_up(level)), orbit(level, pivot, yaw), atol=1e-12)
        assert np.abs(orbit(above, pivot, yaw, axis=camera_up(above)) - orbit(above, pivot, yaw)).max() > 1e-3


def test_a_world_turned_under_the_camera_orbits_to_the_same_image():
    """A tracked clip's world is the head's: the same scene, its world turned by R (view' = view R^-1,
    points X' = R X). Orbiting about the camera's own vertical gives the same camera-space picture
    either way; orbiting about the world's +y does not."""
    view = look_at(torch.tensor([[0.0, 0.0, 0.6]]), torch.tensor([[0.0, 0.0, 0.0]]))[0].double().numpy()
    turn = _turn([1.0, 0.3, 0.2], 7.0)  # the head's pitch, yaw and roll folded into the world
    moved = view @ np.linalg.inv(turn)
    points = np.random.default_rng(0).normal(0, 0.1, (20, 3))
    pivot = points.mean(0)
    cam = lambda v, pts: (v[:3, :3] @ pts.T).T + v[:3, 3]  # noqa: E731
    turned = (turn[:3, :3] @ points.T).T
    for yaw in (30.0, 60.0):
        want = cam(orbit(view, pivot, yaw, axis=camera_up(view)), points)
        got = cam(orbit(moved, turn[:3, :3] @ pivot, yaw, axis=camera_up(moved)), turned)
        np.testing.assert_allclose(got, want, atol=1e-12)
        world_axis = cam(orbit(moved, turn[:3, :3] @ pivot, yaw), turned)
        assert np.abs(world_axis - want).max() > 1e-3
