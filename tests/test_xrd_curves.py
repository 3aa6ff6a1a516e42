"""Two-column diffraction curves (angle in degrees, intensity) are read, or refused with the
file and line named."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import shared_dir
from specinv.config import ConfigError
from specinv.techniques.xrd.curves import MIN_POINTS, read_curve


def test_the_measured_ysz_curve_loads():
    shared = shared_dir()
    if shared is None or not (shared / "real" / "xrd_radmax_ysz").is_dir():
        pytest.skip("shared/real/xrd_radmax_ysz not found: set SPECINV_SHARED")
    curve = read_curve(shared / "real" / "xrd_radmax_ysz" / "YSZ-XRD.txt")
    assert len(curve) == 501
    assert curve.angle_deg[0] == pytest.approx(72.788)
    assert curve.step_deg == pytest.approx(0.002)
    assert curve.intensity.max() == pytest.approx(1093.27)
    assert (curve.intensity > 0).all()


def test_headers_comments_and_delimiters(tmp_path):
    lines = ["# exported by a diffractometer", "2Theta, Intensity"]
    lines += [
        f"{70 + 0.01 * i:.2f};{i * i}" if i % 2 else f"{70 + 0.01 * i:.2f}\t{i * i}\t7"
        for i in range(20)
    ]
    path = tmp_path / "curve.csv"
    path.write_text("\n".join(lines) + "\n")
    curve = read_curve(path)
    np.testing.assert_allclose(curve.angle_deg, 70 + 0.01 * np.arange(20))
    np.testing.assert_array_equal(curve.intensity, np.arange(20) ** 2)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "70 1\n70.1 2\n70.1 3\n",
            "line 3: angle 70.1 deg after 70.1; expected strictly increasing",
        ),
        ("70 1\n70.1 -2\n", "line 2: intensity -2; expected counts >= 0"),
        ("70 1\n70.1 nan\n", "line 2: expected finite numbers"),
        ("70 1\n70.1 2\nsome text\n", "line 3: expected two numbers"),
        ("70 1\n71 2\n", f"2 data points; expected at least {MIN_POINTS}"),
    ],
)
def test_bad_curves_name_the_line(tmp_path, body, message):
    path = tmp_path / "bad.txt"
    path.write_text(
        body + "".join(f"{80 + i} 1\n" for i in range(MIN_POINTS)) * ("points" not in message)
    )
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        read_curve(path)


def test_binary_and_missing_files(tmp_path):
    path = tmp_path / "bin.dat"
    path.write_bytes(bytes(range(256)))
    with pytest.raises(ConfigError, match="a binary file"):
        read_curve(path)
    with pytest.raises(ConfigError, match="cannot read the curve"):
        read_curve(tmp_path / "none.txt")


def test_angle_axes_convert_both_ways():
    from specinv.physics.xrd import convert_axis

    bragg = np.radians(36.7)
    two_theta = np.array([72.0, 73.4, 74.5])
    dq = convert_axis(two_theta, "two_theta_deg", "dq_over_q", bragg)
    np.testing.assert_allclose(dq, np.sin(np.radians(two_theta / 2)) / np.sin(bragg) - 1)
    np.testing.assert_allclose(convert_axis(dq, "dq_over_q", "two_theta_deg", bragg), two_theta)
    np.testing.assert_allclose(
        convert_axis(two_theta, "two_theta_deg", "theta_deg", bragg), two_theta / 2
    )
    with pytest.raises(Exception, match="axis"):
        convert_axis(two_theta, "omega", "dq_over_q", bragg)


def test_a_measured_curve_is_put_on_a_network_axis_with_its_minimum_outside():
    from specinv.config.schema import validate
    from specinv.physics.xrd import convert_axis
    from specinv.techniques import technique_class
    from specinv.techniques.xrd.curves import MeasuredCurve
    from specinv.techniques.xrd.network import curve_on_axis

    cls = technique_class("xrd")
    section: dict = {}
    validate(section, cls.config_schema, where="xrd")
    t = cls.from_config(section)  # the default axis: ΔQ/Q_B
    assert t.setup.axis == "dq_over_q"
    bragg = t.simulator.reflection.bragg_angle_rad
    two_theta = np.linspace(72.9, 73.7, 81)
    intensity = 10.0 ** (1 + np.arange(81) / 40)  # log-linear in the index
    curve = MeasuredCurve(two_theta, intensity, "test")
    dq = convert_axis(two_theta, "two_theta_deg", "dq_over_q", bragg)
    axis = np.linspace(dq[0] - 0.01, dq[-1] + 0.01, 300)
    out = curve_on_axis(curve, "two_theta_deg", t, axis)
    inside = (axis >= dq[0]) & (axis <= dq[-1])
    np.testing.assert_allclose(out[~inside], 10.0)  # the smallest intensity
    np.testing.assert_allclose(
        np.log10(out[inside]), np.interp(axis[inside], dq, np.log10(intensity))
    )
