"""Where the code runs, in words: reports name the CPU's kind (figures differ between AMD and
Intel machines)."""

import platform

from bottleneck.util import env


def test_cpu_model_from_cpuinfo(tmp_path):
  info = tmp_path / "cpuinfo"
  info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\n"
                  "processor\t: 1\nmodel name\t: AMD EPYC\n")
  assert env.cpu_model(str(info)) == "AMD EPYC"
  info.write_text("processor\t: 0\nmodel name\t: \n")  # an empty name
  assert env.cpu_model(str(info)) == platform.machine()
  assert env.cpu_model(str(tmp_path / "missing")) == (platform.processor() or platform.machine())


def test_device_description_names_the_cpu():
  text = env.device_description()
  assert f"{env.cpu_model()} CPU (" in text and "cores)" in text
