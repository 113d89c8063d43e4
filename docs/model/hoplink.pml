/* hoplink.pml: the armbus hop link (bus/link.py, table bus/linktable.py) as a Promela model, for spin.

   Mapping to the code
   -------------------
   proctype A    the sending endpoint: LinkEndpoint with packets to send (send(), _transmit, _do_acked,
                 _do_retransmit, _do_give_up_data, _begin_reset, _do_accept_reset, _do_answer_reset, _do_opened).
   proctype B    the receiving endpoint, which may reboot at any moment (a fresh LinkEndpoint): _do_deliver,
                 _do_reack, _do_resync (out of window), the same RESET/RESET_ACK handling, SYNCING drops.
   a2b, b2a      the two directions of the wire: FIFO channels. xmit() loses a frame (LOSSES times at most: a
                 lost or corrupted frame, since the CRC turns corruption into loss), duplicates it (DUPS times),
                 or delivers it. A full channel loses the frame while the loss budget lasts, else the sender
                 waits (a UART queues). The budgets are spent in the same indivisible step as the send.
   timers        fire when nothing else can happen (spin's timeout): a real timer is set longer than a round trip.
                 -DEARLY_TIMERS lets them fire at any moment instead (a timer that expired early, a slow peer).
                 RETRIES retransmissions, then the frame is given up (DeliveryFailed) and the
                 link resets; a RESET given up leads to DOWN, where the remaining packets fail at once.
   reboots       B may reboot whenever a frame is on its way to it, or when the system is idle. After a reboot it
                 drops everything until both directions are empty (the boot silence, LinkConfig.boot_quiet_ns),
                 then sends its RESET.
   SEQ, NONCES   the 8-bit sequence number and nonce, shrunk to 3 values (stop-and-wait needs exactly 3 to tell
                 expected, previous and out-of-window apart).
   heard         _heard_since_reset: a DATA/ACK arrived since the last RESET we answered (copy detection).
   open on RESET an endpoint that is SYNCING or DOWN and answers a new RESET opens at once (_do_accept_reset):
                 the peer's handshake has zeroed both sides, and its own RESET, withdrawn, is not sent again.
   refusals      REFUSALS: B's layer above may refuse the expected DATA (accepting False, backpressure): no ack,
                 no delivery, the sender retries.
   ghosts        hit[], b_open: bookkeeping for the delivered property only (which packet was on the line while
                 B was not OPEN); the protocol never reads them.
   B_SENDS       -DB_SENDS (NB packets, default 1): B sends data to A too, so both directions of the link carry
                 data and the side that reboots is also a sender: its queue and frame in flight die with its
                 memory (blost[]). Asserts: B's packets reach A in order, once, and an ACK closes only a delivered
                 one; ltl settled_b: each is eventually acked, reported failed, or lost in B's reboot.
   reboot nonce  a rebooted B draws any nonce except the one A answered last (the assumption stated in
                 docs/hoplink.md: with random 8-bit nonces it fails once in 256 reboots; -DNONCE_MAY_REPEAT drops
                 it, and spin then finds the residual risk described there).

   next          packets are numbered in the order they leave A's send queues (LinkEndpoint._start_next). An
                 urgent send (send(..., urgent=True), an ESTOP) only changes which queued packet leaves next: it is
                 not a different kind of frame, so the model covers it as it is. That ordinary packets keep their
                 send order and urgent ones go first is the queue discipline above the line, tested in
                 tests/link/test_link_urgent.py. While an urgent packet waits, the code repeats the frame in
                 flight early and gives it up after two timeouts: an early repeat is a duplicate (the channel
                 makes those), and the early give-up is the give-up modelled here, taken sooner.

   Properties, safety (asserts; plus spin's invalid-end-state check for deadlock; pan compiled -DSAFETY -DNOCLAIM):
   - delivered ids are strictly increasing in the order packets left the queues: no duplicate, no reordering;
   - an ACK closes a packet only if B delivered it (no spurious ack, the MIN bug);
   - when A is done, every packet was acked or reported failed, so none is lost without a report.

   Properties, liveness (the ltl blocks at the end; pan -a -f -N NAME, weak fairness):
   - settled: every packet handed to A is eventually acked or reported failed, whatever the line does
     (-DLOSSES=255: an adversarial line that may lose every frame) and with timers that may fire early;
   - delivered: on a line that stops losing, every packet is eventually acked, except a packet that was on the
     line while B was not OPEN (booting or resynchronising: ghost hit[], it is failed and reported). "Stops
     losing" is the fairness assumption made finite: at most LOSSES frames lost and REFUSALS frames refused, and
     the configurations checked keep LOSSES + REFUSALS + boots of B (the first boot and REBOOTS) <= RETRIES (a
     boot silence may swallow a frame; since a SYNCING endpoint opens on its peer's RESET, 1 loss + 1 reboot
     against 1 retry also holds). 2 losses against 1 retry fail: a packet may then be given up (reported),
     which settled covers.

   Line and timer options: MAXRUN bounds the frames lost in a row; REFUSALS lets B's layer above refuse the
   expected DATA (backpressure: not acked, not delivered, the sender retries); -DEARLY_TIMERS lets every timer
   expire while frames are still on the line (a retransmission or give-up that is early), which needs CAP >= 4
   to leave room for the extra frames.

   Broken variants, each must fail: -DBROKEN_NO_DEDUP (B delivers retransmissions again), -DBROKEN_RESET_COPIES
   (a copy of a RESET resets again), -DBROKEN_SYNC_ACCEPT (SYNCING accepts DATA), -DBROKEN_NO_BOOT_QUIET with
   -DREBOOTS=2 (a rebooted B opens on a stale RESET_ACK from an earlier life), -DBROKEN_NO_NONCE_CHECK with
   -DEARLY_TIMERS (any RESET_ACK opens a SYNCING endpoint: an early give-up's new handshake opens on the answer
   to the old one), -DBROKEN_REFUSAL_ACKS (a refused frame is acked), -DRETRIES=0 (no retransmission: delivered
   fails), -DBROKEN_RETRY_FOREVER (a frame is never given up: settled fails on an adversarial line),
   -DBROKEN_A_NO_DEDUP with -DB_SENDS (A delivers B's retransmissions again).
*/

#ifndef N
#define N        2      /* packets A sends */
#endif
#ifndef SEQ
#define SEQ      3
#endif
#ifndef NONCES
#define NONCES   3
#endif
#ifndef RETRIES
#define RETRIES  1
#endif
#ifndef LOSSES
#define LOSSES   2
#endif
#ifndef DUPS
#define DUPS     1
#endif
#ifndef REBOOTS
#define REBOOTS  1
#endif
#ifndef CAP
#define CAP      2
#endif
#ifndef MAXRUN
#define MAXRUN   255    /* frames the line may lose in a row, both directions together (255: no limit) */
#endif
#ifndef REFUSALS
#define REFUSALS 0      /* DATA frames B's layer above may refuse (backpressure: not acked, not delivered) */
#endif
#define NONE     255
#ifdef EARLY_TIMERS
#define TIMER        true              /* a timer may expire while frames are still on the line */
#else
#define TIMER        timeout           /* a timer expires when nothing else can happen */
#endif
#ifdef BROKEN_RETRY_FOREVER
#define COUNT_TRY    skip              /* DATA retransmissions are not counted: the frame is never given up */
#else
#define COUNT_TRY    tries++
#endif
#ifdef BROKEN_NO_NONCE_CHECK
#define NONCE_MATCHES(s, n)  true      /* any RESET_ACK opens a SYNCING endpoint */
#else
#define NONCE_MATCHES(s, n)  (s == n)
#endif
#define UNLIMITED 255   /* LOSSES or REFUSALS of 255: never spent (an adversarial line, or a full queue) */

#define SYNCING  0
#define OPEN     1
#define DOWN     2

mtype = { DATA, ACK, RESET, RESET_ACK };

chan a2b = [CAP] of { mtype, byte, byte };
chan b2a = [CAP] of { mtype, byte, byte };

byte losses = LOSSES;
byte refusals = REFUSALS;
#if MAXRUN < 255
byte lost_run = 0;          /* frames lost (or refused) in a row: the channel assumption MAXRUN bounds it */
#define LOST_OK      (lost_run < MAXRUN)
#define LOST_ONE     lost_run++
#define ARRIVED      lost_run = 0
#else
#define LOST_OK      true
#define LOST_ONE     skip
#define ARRIVED      skip
#endif
byte dups = DUPS;
bool delivered[N];
bool acked[N];
bool failed[N];
byte inflight = NONE;       /* A's frame in flight: global only so that B's reboot can mark it (ghost below) */
bool hit[N];                /* ghost: on the line at some moment while B was not OPEN (booting, resynchronising) */
bool b_open = false;        /* ghost: B's state is OPEN */
byte last_delivered = NONE;
bool a_done = false;
#ifdef B_SENDS
#ifndef NB
#define NB       1      /* packets B sends to A (the reverse direction, from the side that reboots) */
#endif
bool bdelivered[NB];
bool backed[NB];
bool bfailed[NB];
bool blost[NB];             /* queued or in flight at B when it rebooted: lost with its memory */
byte b_last = NONE;
byte b_inflight = NONE;
byte b_next = 0;
#define B_IDLE       (b_inflight == NONE && b_next == NB)
#else
#define B_IDLE       true
#endif

inline spend(budget) {
  if
  :: budget != UNLIMITED -> budget--
  :: else -> skip
  fi
}

inline xmit(ch, k, s, m) {   /* one indivisible step: the budgets are shared by A and B */
  atomic {
    if
    :: full(ch) && losses > 0 && LOST_OK -> spend(losses); LOST_ONE    /* a full channel loses the frame */
    :: full(ch) && a_done -> skip                 /* ... or the sender waits; once A is done nobody reads */
    :: nfull(ch) ->
       if
       :: ch!k,s,m; ARRIVED
       :: losses > 0 && LOST_OK -> spend(losses); LOST_ONE
       :: dups > 0 && len(ch) < CAP - 1 -> dups--; ch!k,s,m; ch!k,s,m; ARRIVED
       fi
    fi
  }
}

inline deliver(m) {
  assert(last_delivered == NONE || m > last_delivered);
  last_delivered = m;
  delivered[m] = true
}

byte a_peer_nonce = NONE;   /* A's _peer_nonce: global only so that B's reboot can state the nonce assumption */

#ifdef B_SENDS
#define A_RX_ZERO    arx = 0
#define B_FAIL_INFLIGHT  if :: b_inflight != NONE -> bfailed[b_inflight] = true; b_inflight = NONE :: else -> skip fi; btx = 0; btries = 0
#else
#define A_RX_ZERO    skip
#define B_FAIL_INFLIGHT  skip
#endif

proctype A() {
  byte state = SYNCING, tx = 0, nonce = 0, tries = 0, arx = 0;
  bool heard = false;
  byte next = 0, k, s, m;

  xmit(a2b, RESET, nonce, 0);
  do
  :: atomic { b2a?k,s,m ->
     if
     :: k == ACK ->
        heard = true;
        if
        :: state == OPEN && inflight != NONE && s == tx ->
           assert(delivered[inflight]);
           acked[inflight] = true; inflight = NONE; tx = (tx + 1) % SEQ; tries = 0
        :: else -> skip
        fi
     :: k == DATA -> heard = true
#ifdef B_SENDS
        ; if
        :: state == OPEN && s == arx ->
           d_step { assert(b_last == NONE || m > b_last); b_last = m; bdelivered[m] = true };
           xmit(a2b, ACK, s, 0); arx = (arx + 1) % SEQ
        :: state == OPEN && s == (arx + SEQ - 1) % SEQ ->
#ifdef BROKEN_A_NO_DEDUP
           d_step { assert(b_last == NONE || m > b_last); b_last = m; bdelivered[m] = true };
#endif
           xmit(a2b, ACK, s, 0)
        :: state == OPEN && s != arx && s != (arx + SEQ - 1) % SEQ ->           /* out of window: reset */
           if
           :: inflight != NONE -> failed[inflight] = true; inflight = NONE
           :: else -> skip
           fi;
           state = SYNCING; tx = 0; arx = 0; tries = 0; nonce = (nonce + 1) % NONCES;
           xmit(a2b, RESET, nonce, 0)
        :: state != OPEN -> skip
        fi
#endif
     :: k == RESET ->
        if
#ifndef BROKEN_RESET_COPIES
        :: s == a_peer_nonce && !heard -> skip        /* a copy: answer, touch nothing */
#endif
        :: else ->
           a_peer_nonce = s; heard = false;
           if
           :: state == OPEN ->
              if
              :: inflight != NONE -> failed[inflight] = true; inflight = NONE
              :: else -> skip
              fi;
              tx = 0; tries = 0; A_RX_ZERO
           :: else -> state = OPEN; tries = 0     /* SYNCING/DOWN: the peer's handshake opens us too */
           fi
        fi;
        xmit(a2b, RESET_ACK, s, 0)
     :: k == RESET_ACK ->
        if
        :: state != OPEN && NONCE_MATCHES(s, nonce) -> state = OPEN; tries = 0
        :: else -> skip
        fi
     fi }
  :: state == OPEN && inflight == NONE && next < N ->
     inflight = next; next++; tries = 0; hit[inflight] = !b_open;
     xmit(a2b, DATA, tx, inflight)
  :: TIMER && state == OPEN && inflight != NONE && tries < RETRIES ->
     COUNT_TRY; xmit(a2b, DATA, tx, inflight)
  :: TIMER && state == OPEN && inflight != NONE && tries == RETRIES ->
     failed[inflight] = true; inflight = NONE;                /* DeliveryFailed(RETRIES), then reset */
     state = SYNCING; tx = 0; tries = 0; nonce = (nonce + 1) % NONCES; A_RX_ZERO;
     xmit(a2b, RESET, nonce, 0)
  :: TIMER && state == SYNCING && tries < RETRIES -> tries++; xmit(a2b, RESET, nonce, 0)
  :: TIMER && state == SYNCING && tries == RETRIES -> state = DOWN
  :: state == DOWN && next < N -> failed[next] = true; next++
  :: (state == DOWN || (state == OPEN && inflight == NONE)) && next == N && B_IDLE -> break
  od;
  a_done = true;
  byte i = 0;
  do
  :: i < N -> assert(acked[i] || failed[i]); i++
  :: else -> break
  od;
#ifdef B_SENDS
  i = 0;
  do
  :: i < NB -> assert(backed[i] || bfailed[i] || blost[i]); i++
  :: else -> break
  od
#endif
}

inline b_leaves_open() {    /* ghost: B stops being OPEN; the frame A has on the line is hit */
  d_step {
    b_open = false;
    if
    :: inflight != NONE -> hit[inflight] = true
    :: else -> skip
    fi
  }
}

proctype B() {
  byte state, rx, nonce = 1, peer_nonce, tries, k, s, m, btx, btries;
  bool heard;
  byte reboots = REBOOTS;

boot:
  state = SYNCING; rx = 0; peer_nonce = NONE; heard = false; tries = 0; btx = 0; btries = 0;
#ifndef BROKEN_NO_BOOT_QUIET
  do          /* boot silence (boot_quiet_ns): every frame of the previous life leaves the line */
  :: a2b?k,s,m -> skip
  :: empty(a2b) && (empty(b2a) || a_done) -> break
  od;
#endif
  xmit(b2a, RESET, nonce, 0);
end:
  do
  :: atomic { a2b?k,s,m ->
     if
     :: k == DATA ->
        heard = true;
        if
        :: state == OPEN && s == rx -> deliver(m); xmit(b2a, ACK, s, 0); rx = (rx + 1) % SEQ
        :: state == OPEN && s == rx && refusals > 0 && LOST_OK -> spend(refusals); LOST_ONE  /* no room above */
#ifdef BROKEN_REFUSAL_ACKS
           xmit(b2a, ACK, s, 0); rx = (rx + 1) % SEQ
#endif
        :: state == OPEN && s == (rx + SEQ - 1) % SEQ ->
#ifdef BROKEN_NO_DEDUP
           deliver(m);
#endif
           xmit(b2a, ACK, s, 0)
        :: state == OPEN && s != rx && s != (rx + SEQ - 1) % SEQ ->
           state = SYNCING; rx = 0; tries = 0; nonce = (nonce + 1) % NONCES;   /* out of window: reset */
           B_FAIL_INFLIGHT;
           b_leaves_open();
           xmit(b2a, RESET, nonce, 0)
#ifdef BROKEN_SYNC_ACCEPT
        :: state != OPEN && s == rx -> deliver(m); xmit(b2a, ACK, s, 0); rx = (rx + 1) % SEQ
#endif
        :: state != OPEN -> skip
        fi
     :: k == ACK -> heard = true
#ifdef B_SENDS
        ; if
        :: state == OPEN && b_inflight != NONE && s == btx ->
           assert(bdelivered[b_inflight]);
           backed[b_inflight] = true; b_inflight = NONE; btx = (btx + 1) % SEQ; btries = 0
        :: else -> skip
        fi
#endif
     :: k == RESET ->
        if
#ifndef BROKEN_RESET_COPIES
        :: s == peer_nonce && !heard -> skip
#endif
        :: else -> peer_nonce = s; heard = false;
           if
           :: state == OPEN -> rx = 0; B_FAIL_INFLIGHT
           :: else -> state = OPEN; tries = 0; b_open = true     /* SYNCING/DOWN: the peer's handshake opens us too */
           fi
        fi;
        xmit(b2a, RESET_ACK, s, 0)
     :: k == RESET_ACK ->
        if
        :: state != OPEN && NONCE_MATCHES(s, nonce) -> state = OPEN; tries = 0; b_open = true
        :: else -> skip
        fi
     fi }
  :: TIMER && state == SYNCING && tries < RETRIES -> tries++; xmit(b2a, RESET, nonce, 0)
  :: TIMER && state == SYNCING && tries == RETRIES -> state = DOWN
#ifdef B_SENDS
  :: state == OPEN && b_inflight == NONE && b_next < NB ->
     b_inflight = b_next; b_next++; btries = 0;
     xmit(b2a, DATA, btx, b_inflight)
  :: TIMER && state == OPEN && b_inflight != NONE && btries < RETRIES -> btries++; xmit(b2a, DATA, btx, b_inflight)
  :: TIMER && state == OPEN && b_inflight != NONE && btries == RETRIES ->
     B_FAIL_INFLIGHT;                                       /* DeliveryFailed(RETRIES), then reset */
     state = SYNCING; rx = 0; tries = 0; nonce = (nonce + 1) % NONCES; b_leaves_open();
     xmit(b2a, RESET, nonce, 0)
  :: state == DOWN && b_next < NB -> bfailed[b_next] = true; b_next++
#endif
  :: reboots > 0 && (nempty(a2b) || timeout) ->                                   /* power cycle: all link state is lost */
     reboots--;
     b_leaves_open();
#ifdef B_SENDS
     d_step {                          /* B's queue and frame in flight die with its memory */
       byte j = 0;
       do
       :: j < NB && !backed[j] && !bfailed[j] -> blost[j] = true; j++
       :: j < NB && (backed[j] || bfailed[j]) -> j++
       :: j == NB -> break
       od;
       b_next = NB; b_inflight = NONE
     };
#endif
#ifdef NONCE_MAY_REPEAT
     select (nonce : 0 .. NONCES - 1);
#else
     if      /* the assumption: not the nonce A answered last (picked without a retry loop: no spurious cycle) */
     :: a_peer_nonce == NONE -> select (nonce : 0 .. NONCES - 1)
     :: else -> select (nonce : 1 .. NONCES - 1); nonce = (a_peer_nonce + nonce) % NONCES
     fi;
#endif
     goto boot
  od
}

/* Liveness (spin -a; pan -a -f -N NAME; see the header). Every packet is handed to A's queue at the start. */
#define SETTLED(i)   (acked[i] || failed[i])
#define DONE(i)      (acked[i] || hit[i])
#if N == 1
#define ALL(P)       P(0)
#elif N == 2
#define ALL(P)       (P(0) && P(1))
#else
#define ALL(P)       (P(0) && P(1) && P(2))
#endif

/* settled: whatever the line does, every packet is eventually acked or reported failed (no packet waits
   forever, no livelock in the reset handshake). */
ltl settled { <> ALL(SETTLED) }

/* delivered: on a line that stops losing (at most LOSSES frames lost and REFUSALS frames refused in all, with
   LOSSES + REFUSALS <= RETRIES), every packet is eventually acked, except one in flight while the peer had lost
   its session to a reboot (that one is failed and reported, maybe delivered: settled and the asserts cover it). */
ltl delivered { <> ALL(DONE) }

#ifdef B_SENDS
/* settled_b: every packet handed to B (the side that reboots) is eventually acked, reported failed, or lost with
   B's memory in a reboot (the reboot is announced: the host's re-enumeration covers it). */
#define BSETTLED(i)  (backed[i] || bfailed[i] || blost[i])
#if NB == 1
ltl settled_b { <> BSETTLED(0) }
#else
ltl settled_b { <> (BSETTLED(0) && BSETTLED(1)) }
#endif
#endif

init {
  atomic { run A(); run B() }
}
