// Helper for artillery-echo.yml (Artillery 2, ws engine): bounds each virtual
// user's closed send/echo loop by wall-clock time and counts the echoes that
// complete inside the measured window.
//
// Timeline (T0 = when the first virtual user of this worker started):
//   [T0,      T0+3 s)  arrival ramp: 100 users open over 3 s (not counted)
//   [T0+3 s,  T0+13 s) measured window: 10 s at full concurrency (counted)
//   [T0+13 s, T0+15 s) tail: users keep looping, then stop (not counted);
//                      mirrors tsung-echo.xml, which runs 15 s and is read
//                      over the 10 one-second intervals after its ramp.
// Each user emits its window count once, at its end, as the counter
// "echo.window_completed" (one event per user, so no per-message overhead).
'use strict';

const RAMP_MS = 3000;
const WINDOW_MS = 10000;
const STOP_MS = 15000;
let t0 = 0;

function startUser(context, events, done) {
  if (t0 === 0) t0 = Date.now();
  context.vars.echoWindow = 0;
  return done();
}

// whileTrue hook: called after each completed loop iteration (i.e. after the
// echo of the message was received and matched).
function keepLooping(context, next) {
  const dt = Date.now() - t0;
  if (dt >= RAMP_MS && dt < RAMP_MS + WINDOW_MS) context.vars.echoWindow++;
  return next(dt < STOP_MS);
}

function reportUser(context, events, done) {
  events.emit('counter', 'echo.window_completed', context.vars.echoWindow);
  return done();
}

module.exports = { startUser, keepLooping, reportUser };
