// dsk-scale: the elastic-capacity control loop for Slurm and Kubernetes fleets. Parses flags and
// calls lib/scale: read metrics, decide with the policy, act (dry run unless --apply).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <thread>

#include "core/cli.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/record.hpp"
#include "core/signals.hpp"
#include "core/units.hpp"
#include "scale/controller.hpp"
#include "scale/plot.hpp"
#include "scale/samples_file.hpp"
#include "scale/simulate.hpp"
#include "scale/slurm_power.hpp"

namespace {

using namespace dsk;
using namespace dsk::scale;

struct ScaleFlags {
  bool once = false;
  bool watch = false;
  std::string simulate_trace;
  bool apply = false;
  std::string state_path;
  std::optional<int64_t> current;
  std::string phase;
  int64_t iterations = 0;  // --watch: stop after this many decisions (0: run until a signal)
  std::string plot_path;
  int64_t start_capacity = -1;
  std::string slurm_resume;   // hostlist, as Slurm's ResumeProgram
  std::string slurm_suspend;  // hostlist, as Slurm's SuspendProgram
};

// Totals to a thousandth, so that records read cleanly and a golden comparison is exact.
double rounded(double value) { return std::round(value * 1000) / 1000; }

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void print_line(const std::string& line) {
  std::fputs((line + "\n").c_str(), stdout);
  std::fflush(stdout);
}

// One pass of the loop: observe, decide, print the decision, act. With hold_on_source_error (in
// --watch) a failing source holds capacity and says why; otherwise its error ends the run.
void decide_once(const Config& config, const Policy& policy, const ScaleFlags& flags, Actuator* actuator,
                 ControllerState& state, bool hold_on_source_error) {
  Observation observation;
  try {
    observation = observe(source_config_from(config), now_seconds());
    if (!observation.current) observation.current = flags.current;
    if (actuator && !observation.current) observation.current = actuator->current();
  } catch (const UsageError&) {
    throw;
  } catch (const Error& e) {
    if (!hold_on_source_error) throw;
    Decision hold = hold_decision(now_seconds(), state.last_current, str("metric source failed: holding capacity: ", e.what()));
    print_line(format_decision(hold));
    log_warn(hold.reason);
    return;
  }
  if (!flags.phase.empty()) observation.phase = flags.phase;
  Decision decision = decide(policy, observation, state);
  print_line(format_decision(decision));
  if (decision.action != "hold" && actuator) actuator->act(decision, flags.apply);
}

int run_once(const Config& config, const Policy& policy, const ScaleFlags& flags) {
  std::unique_ptr<Actuator> actuator = make_actuator(config);
  ControllerState state = load_state(flags.state_path);
  decide_once(config, policy, flags, actuator.get(), state, false);
  if (flags.apply || !actuator) save_state(flags.state_path, state);
  return 0;
}

int run_watch(const Config& config, const Policy& policy, const ScaleFlags& flags) {
  std::unique_ptr<Actuator> actuator = make_actuator(config);
  ControllerState state = load_state(flags.state_path);
  double interval = config_duration(config, "interval");
  install_stop_signal_handlers();
  for (int64_t done = 0; flags.iterations == 0 || done < flags.iterations; ++done) {
    if (done > 0) {
      auto wake = std::chrono::steady_clock::now() + std::chrono::duration<double>(interval);
      while (!stop_requested() && std::chrono::steady_clock::now() < wake)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (stop_requested()) break;
    try {
      decide_once(config, policy, flags, actuator.get(), state, true);
    } catch (const UsageError&) {
      throw;
    } catch (const Error& e) {
      log_error("action failed, will decide again next interval: ", e.what());
    }
    save_state(flags.state_path, state);
  }
  return stop_requested() ? static_cast<int>(stop_exit_code()) : 0;
}

int run_simulate(const Policy& policy, const ScaleFlags& flags, const std::string& policy_path) {
  std::vector<Observation> trace = read_samples(flags.simulate_trace);
  int64_t start = flags.start_capacity >= 0 ? flags.start_capacity : policy.min_capacity;
  SimulationResult result = simulate(policy, trace, start);
  if (!flags.plot_path.empty()) plot_simulation(result, policy.metric, flags.plot_path);
  Record record("simulation");
  record.set("trace", flags.simulate_trace)
      .set("policy", policy_path.empty() ? std::string("defaults") : policy_path)
      .set("samples", static_cast<int64_t>(trace.size()))
      .set("hours", rounded(result.duration_hours))
      .set("capacity_hours", rounded(result.capacity_hours))
      .set("peak_capacity", result.peak_capacity)
      .set("cost_on_demand", rounded(result.cost_on_demand))
      .set("cost_spot", rounded(result.cost_spot))
      .set("seconds_over_target", rounded(result.seconds_over_target))
      .set("unserved_unit_hours", rounded(result.unserved_unit_hours))
      .set("actions", result.actions)
      .set("scale_outs", result.scale_outs)
      .set("scale_ins", result.scale_ins);
  if (!flags.plot_path.empty()) record.set("plot", flags.plot_path);
  record.print();
  return 0;
}

// The modes exclude each other. Checked here rather than with CLI11's excludes(), whose raw
// "Excludes: ..." lists crowd every mode's line of --help.
void check_one_mode(const std::vector<CLI::Option*>& modes) {
  std::string given;
  for (const CLI::Option* mode : modes)
    if (mode->count() > 0) given += (given.empty() ? "" : " and ") + mode->get_name();
  if (given.find(" and ") != std::string::npos)
    throw UsageError(str("give one mode (--once, --watch, --simulate, --slurm-resume or --slurm-suspend), not ", given));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Scale GPU capacity out and in by policy: Slurm nodes, Kubernetes replicas, or any command", "dsk-scale"};
  dsk::cli::CommonOptions common;
  dsk::cli::add_common_flags(app, common);
  dsk::cli::add_config_flags(app, common);
  ScaleFlags flags;
  auto* once = app.add_flag("--once", flags.once, "Make one decision, print it as one line, act on it (with --apply)");
  auto* watch = app.add_flag("--watch", flags.watch, "Decide every `interval` until SIGINT/SIGTERM; a failing source holds capacity");
  auto* simulate_option = app.add_option("--simulate", flags.simulate_trace, "Replay a JSONL/CSV trace through the policy and print totals")->type_name("TRACE");
  auto* resume = app.add_option("--slurm-resume", flags.slurm_resume, "Act as Slurm's ResumeProgram: run actuator.command for each node")->type_name("HOSTLIST");
  auto* suspend = app.add_option("--slurm-suspend", flags.slurm_suspend, "Act as Slurm's SuspendProgram: run actuator.command for each node")->type_name("HOSTLIST");
  app.add_flag("--apply", flags.apply, "Carry decisions out (default: dry run, say what would be done)");
  app.add_option("--state", flags.state_path, "JSON file keeping cooldowns and windows between --once runs")->type_name("FILE");
  app.add_option("--current", flags.current, "The capacity up now, when no source or actuator reports it")
      ->type_name("N")->check(dsk::cli::numeric<int64_t>(0));
  app.add_option("--phase", flags.phase, "The training phase, for the policy's phases.<name>.cpus_per_gpu")->type_name("NAME");
  app.add_option("--iterations", flags.iterations, "--watch: stop after N decisions")
      ->type_name("N")->check(dsk::cli::numeric<int64_t>(1));
  app.add_option("--plot", flags.plot_path, "--simulate: draw load, capacity and actions into this PNG (gnuplot)")->type_name("PNG");
  app.add_option("--start", flags.start_capacity, "--simulate: capacity at the start when the trace has no 'current' (default capacity.min)")
      ->type_name("N")->check(dsk::cli::numeric<int64_t>(0));
  dsk::cli::set_examples(app, {
      "dsk-scale -c configs/scale-slurm.yaml --once",
      "dsk-scale -c configs/scale-slurm.yaml --watch --apply",
      "dsk-scale --simulate tests/fixtures/scale/diurnal.jsonl --plot diurnal.png",
      "dsk-scale -c configs/scale-serve.yaml --once --set actuator.kubernetes.name=dsk-serve",
  });
  return dsk::cli::run(app, argc, argv, common, [&] {
    check_one_mode({once, watch, simulate_option, resume, suspend});
    std::optional<Config> config = dsk::cli::load_config(policy_schema(), common);
    if (!config) return 0;
    Policy policy = policy_from_config(*config);
    if (!flags.slurm_resume.empty() || !flags.slurm_suspend.empty()) {
      bool resuming = !flags.slurm_resume.empty();
      run_power_program(policy, config->get_string("actuator.command"), resuming,
                        resuming ? flags.slurm_resume : flags.slurm_suspend);
      return 0;
    }
    if (!flags.simulate_trace.empty()) return run_simulate(policy, flags, common.config_path);
    if (flags.watch) return run_watch(*config, policy, flags);
    if (flags.once) return run_once(*config, policy, flags);
    throw UsageError("say what to do: --once, --watch, --simulate TRACE, --slurm-resume or --slurm-suspend");
  });
}
