"""Physical model of one joint actuator: DC motor, gearbox, load, encoder and winding temperature.

Theory of operation
-------------------
The firmware sets a terminal voltage (PWM duty x supply) and reads back an encoder count, a current
sense, a winding temperature and the supply voltage. Between two firmware calls the voltage is held
(zero-order hold); :meth:`Actuator.advance` integrates the physics from the last call up to ``now``
(integer ns) in fixed sub-steps of at most ``ActuatorParams.max_step_ns``. Everything is plain float
math: at 6 joints x 1 kHz a numpy array per step costs more than it saves (tests/joints/bench_actuator.py
measures both: numpy is about 4x slower).

Per sub-step ``h`` (motor-side quantities have an ``m`` suffix, output side none; ``N`` gear ratio):

* electrical: ``L di/dt = V - R(T) i - Ke w_m`` solved exactly for constant ``w_m`` over the step
  (``i -> i_ss + (i - i_ss) exp(-h R/L)``), so the 40 us electrical time constant never limits the
  step size. The driver's hardware current limit then clips ``i`` (a chopper cannot exceed it).
* mechanical, at the output: ``J dw/dt = eta N Kt i - b w - tau_c sign(w) - tau_ext``. Viscous
  friction is implicit (unconditionally stable); Coulomb friction cannot reverse motion (a sign change
  stops the joint) and holds a resting joint while the driving torque stays below ``tau_c``. A *jammed*
  joint is held at rest.
* thermal: one pole, ``C dT/dt = i^2 R(T) - (T - T_amb)/R_th``, solved exactly per step; the winding
  resistance rises with temperature (copper, +0.393 %/K).

Sensors: a motor-side quadrature encoder (``floor`` of the shaft angle in counts), a current sense, a winding
temperature and the supply voltage; Gaussian noise on the analog ones (and, if ``encoder_noise_counts`` > 0, on
the encoder count) only when a seed is given (``random.Random(seed)``: same seed, same noise).

Fault-injection hooks (public, changed between two ``advance`` calls; the physics uses them from the next
sub-step on): ``supply_voltage`` (a sagging supply), ``ambient_temperature`` (a hot or cold environment: the
winding follows with its thermal time constant), ``load_torque`` and ``jammed`` (a load or a locked output),
:meth:`Actuator.set_noise` (sensor noise levels, optionally a new noise seed).

Default numbers (a small arm joint in the class of a ROBOTIS XM430-W350: 12 V, 4.1 N m stall, 2.3 A stall,
46 rpm no load, 353.5:1; see its public e-manual datasheet):
  R = 12 V / 2.3 A = 5.2 ohm; Ke = Kt = 12 V / (46 rpm x 353.5 in rad/s) = 7.05e-3 V s/rad; gearbox efficiency
  0.72 so that 7.05e-3 x 353.5 x 0.72 x 2.3 A = 4.1 N m; inductance 0.2 mH and rotor inertia 0.9 g cm^2 are
  typical of 17 mm coreless motors (maxon RE-max 17 class datasheets); load 0.3 kg at 0.1 m -> 3e-3 kg m^2;
  thermal R_th 30 K/W and time constant 60 s are a single-pole lump of the winding and housing figures of
  those motor datasheets; 4096 counts per motor revolution (1024-line quadrature encoder).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from armbus.bus.errors import UsageError

TWO_PI = 2.0 * math.pi
#: Temperature coefficient of copper resistance (per K, at 20 degC), a handbook value.
COPPER_ALPHA = 0.00393


@dataclass(frozen=True)
class ActuatorParams:
    """Physical parameters of one joint model. Defaults: see the module docstring for the sources."""

    supply_voltage: float = 12.0  # V, nominal bus supply
    resistance: float = 5.2  # ohm at 20 degC, terminal resistance
    inductance: float = 0.2e-3  # H
    torque_constant: float = 7.05e-3  # N m/A at the motor shaft (= back-EMF constant in V s/rad)
    gear_ratio: float = 353.5  # motor turns per output turn
    gear_efficiency: float = 0.72
    rotor_inertia: float = 0.9e-7  # kg m^2, motor side
    load_inertia: float = 3.0e-3  # kg m^2, output side (link + payload)
    viscous_friction: float = 0.02  # N m s/rad, output side
    coulomb_friction: float = 0.08  # N m, output side (about 2 % of stall torque)
    hw_current_limit: float = 2.5  # A, the driver's own chopper limit (firmware limits are lower)
    ambient_temperature: float = 25.0  # degC
    thermal_resistance: float = 30.0  # K/W winding to ambient
    thermal_time_constant: float = 60.0  # s
    encoder_counts_per_motor_rev: int = 4096
    current_noise: float = 0.005  # A, 1 sigma, only with a noise seed
    temperature_noise: float = 0.1  # K, 1 sigma, only with a noise seed
    voltage_noise: float = 0.02  # V, 1 sigma, only with a noise seed
    encoder_noise_counts: float = 0.0  # counts, 1 sigma, only with a noise seed (a real encoder has none)
    max_step_ns: int = 500_000  # integration sub-step (0.5 ms: 30x below the 16 ms mechanical time constant)

    @property
    def output_inertia(self) -> float:
        """Total inertia seen at the output: the rotor reflected through the gearbox plus the load."""
        return self.rotor_inertia * self.gear_ratio**2 + self.load_inertia

    @property
    def output_torque_constant(self) -> float:
        """Output torque per ampere (N m/A), gearbox efficiency included."""
        return self.torque_constant * self.gear_ratio * self.gear_efficiency

    @property
    def counts_per_output_rad(self) -> float:
        """Encoder counts per radian at the output."""
        return self.encoder_counts_per_motor_rev * self.gear_ratio / TWO_PI

    @property
    def stall_torque(self) -> float:
        """Output torque at full supply voltage with the rotor locked, at 20 degC (N m)."""
        return self.output_torque_constant * min(self.supply_voltage / self.resistance, self.hw_current_limit)


class Actuator:
    """State of one actuator; driven by :meth:`advance` with the firmware's held voltage.

    Fields are public for tests and for fault injection: ``load_torque`` (external torque in N m; positive
    pushes toward positive angles), ``jammed`` (locks the output), ``supply_voltage`` (a sagging supply),
    ``ambient_temperature`` (degC); noise levels through :meth:`set_noise`.
    """

    def __init__(self, params: ActuatorParams | None = None, seed: int | None = None, now: int = 0,
                 position: float = 0.0) -> None:
        self.params = p = params if params is not None else ActuatorParams()
        self.position = position  # rad, output
        self.velocity = 0.0  # rad/s, output
        self.current = 0.0  # A
        self.temperature = p.ambient_temperature  # degC, winding
        self.voltage_cmd = 0.0  # V, as requested by the firmware
        self.bridge_on = False  # False: H-bridge off, the motor coasts and its current decays to zero
        self.supply_voltage = p.supply_voltage  # V, may be changed to inject a sagging supply
        self.ambient_temperature = p.ambient_temperature  # degC, may be changed to inject a hot environment
        self.load_torque = 0.0  # N m, external torque on the output (positive drives toward positive angles)
        self.jammed = False  # a locked output (stall fault injection)
        self.time = now  # ns, the instant the state refers to
        self._rng = random.Random(seed) if seed is not None else None
        # 1-sigma sensor noise (used only with a noise stream): current A, temperature K, voltage V, encoder counts
        self.current_noise = p.current_noise
        self.temperature_noise = p.temperature_noise
        self.voltage_noise = p.voltage_noise
        self.encoder_noise = p.encoder_noise_counts
        # constants of the integration, computed once
        self._j = p.output_inertia
        self._kt_out = p.output_torque_constant
        self._ke_m = p.torque_constant
        self._n = p.gear_ratio
        self._tau_e = p.inductance / p.resistance
        self._counts_per_rad = p.counts_per_output_rad
        self._cache_h = -1.0
        self._cache_e = 0.0
        self._cache_t = 0.0

    @property
    def noisy(self) -> bool:
        """True when the sensors add noise (a noise seed was given)."""
        return self._rng is not None

    def set_noise(self, *, current: float | None = None, temperature: float | None = None,
                  voltage: float | None = None, encoder_counts: float | None = None,
                  seed: int | None = None) -> None:
        """Change the 1-sigma sensor noise levels (None: keep), and with ``seed`` restart the noise stream.

        Noise needs a seeded stream: asking for noise on an actuator built without a seed and giving no
        ``seed`` here is a :class:`~armbus.bus.errors.UsageError` (randomness is always seeded)."""
        levels = {"current": current, "temperature": temperature, "voltage": voltage,
                  "encoder_counts": encoder_counts}
        for name, value in levels.items():
            if value is not None and not (isinstance(value, (int, float)) and 0.0 <= value < math.inf):
                raise UsageError(f"set_noise: {name} must be a non-negative number, got {value!r}")
        if seed is not None:
            self._rng = random.Random(seed)
        elif self._rng is None and any(levels.values()):
            raise UsageError("set_noise: this actuator has no noise seed; pass seed=...")
        if current is not None:
            self.current_noise = float(current)
        if temperature is not None:
            self.temperature_noise = float(temperature)
        if voltage is not None:
            self.voltage_noise = float(voltage)
        if encoder_counts is not None:
            self.encoder_noise = float(encoder_counts)

    def set_voltage(self, volts: float) -> None:
        """Switch the bridge on and hold a new terminal voltage from now on (clipped to the supply)."""
        self.bridge_on = True
        vs = self.supply_voltage
        self.voltage_cmd = vs if volts > vs else (-vs if volts < -vs else volts)

    def coast(self) -> None:
        """Switch the bridge off (torque off): no drive, no braking, the current decays to zero."""
        self.bridge_on = False
        self.voltage_cmd = 0.0

    def advance(self, now: int) -> None:
        """Integrate from the last call up to ``now`` (ns) with the held voltage. ``now`` never goes back."""
        span = now - self.time
        if span <= 0:
            return
        p = self.params
        max_step = p.max_step_ns
        full, rest = divmod(span, max_step)
        tc = p.coulomb_friction
        if (not self.bridge_on and self.velocity == 0.0 and self.current == 0.0
                and (self.jammed or -tc <= self.load_torque <= tc)):
            # at rest and unpowered (the idle joint): only the winding temperature moves, toward ambient. This
            # is the sub-step arithmetic below with i = w = 0, so the result is the same to the last bit.
            amb = self.ambient_temperature
            temp = self.temperature
            if temp != amb:
                if full:
                    et = self._exps(max_step * 1e-9)[1]
                    for _ in range(full):
                        temp = amb + (temp - amb) * et
                if rest:
                    temp = amb + (temp - amb) * self._exps(rest * 1e-9)[1]
                self.temperature = temp
        else:
            if full:
                self._integrate(max_step * 1e-9, full)
            if rest:
                self._integrate(rest * 1e-9, 1)
        self.time = now

    def _exps(self, h: float) -> tuple[float, float]:
        """Electrical and thermal decay factors of a sub-step of ``h`` s (the last ``h`` is cached)."""
        if h != self._cache_h:
            self._cache_h = h
            self._cache_e = math.exp(-h / self._tau_e)
            self._cache_t = math.exp(-h / self.params.thermal_time_constant)
        return self._cache_e, self._cache_t

    def _step(self, h: float) -> None:
        """One sub-step of ``h`` s."""
        self._integrate(h, 1)

    def _integrate(self, h: float, n: int) -> None:
        """``n`` sub-steps of ``h`` s with the held voltage (state in locals: this is the simulation's hot loop)."""
        p = self.params
        e, et = self._exps(h)
        vs = self.supply_voltage
        v = self.voltage_cmd
        v = vs if v > vs else (-vs if v < -vs else v)
        r20, rth, lim = p.resistance, p.thermal_resistance, p.hw_current_limit
        tc, j = p.coulomb_friction, self._j
        hj = h / j
        den = 1.0 + h * p.viscous_friction / j
        ke_n = self._ke_m * self._n
        kt, load, amb = self._kt_out, self.load_torque, self.ambient_temperature
        bridge, jammed = self.bridge_on, self.jammed
        w, i, pos, temp = self.velocity, self.current, self.position, self.temperature
        for _ in range(n):
            r = r20 * (1.0 + COPPER_ALPHA * (temp - 20.0))
            # electrical: exact for constant speed over the step, then the driver's chopper limit
            i_ss = (v - ke_n * w) / r if bridge else 0.0
            i = i_ss + (i - i_ss) * e
            i = lim if i > lim else (-lim if i < -lim else i)
            # mechanical
            if jammed:
                w_new = 0.0
            else:
                drive = kt * i + load
                if w == 0.0:
                    if -tc <= drive <= tc:
                        w_new = 0.0
                    else:
                        net = drive - tc if drive > 0.0 else drive + tc
                        w_new = hj * net / den
                else:
                    net = drive - (tc if w > 0.0 else -tc)
                    w_new = (w + hj * net) / den
                    if (w > 0.0 > w_new) or (w < 0.0 < w_new):
                        w_new = 0.0  # friction stops a joint; it never reverses it
            pos += 0.5 * (w + w_new) * h
            w = w_new
            # thermal
            t_ss = amb + i * i * r * rth
            temp = t_ss + (temp - t_ss) * et
        self.velocity, self.current, self.position, self.temperature = w, i, pos, temp

    # --- sensors (what the firmware can see) -------------------------------------------------------------
    def encoder_counts(self) -> int:
        """Motor-side encoder count (multi-turn, quantized by ``floor``), plus noise if set."""
        counts = math.floor(self.position * self._counts_per_rad)
        if self.encoder_noise and self._rng is not None:
            counts += round(self._rng.gauss(0.0, self.encoder_noise))
        return counts

    def sensed_current(self) -> float:
        """Current-sense reading in A."""
        if self._rng is None:
            return self.current
        return self.current + self._rng.gauss(0.0, self.current_noise)

    def sensed_temperature(self) -> float:
        """Winding temperature reading in degC."""
        if self._rng is None:
            return self.temperature
        return self.temperature + self._rng.gauss(0.0, self.temperature_noise)

    def sensed_voltage(self) -> float:
        """Supply voltage reading in V."""
        if self._rng is None:
            return self.supply_voltage
        return self.supply_voltage + self._rng.gauss(0.0, self.voltage_noise)
