package io.egresstunnel.proto.session;

import io.egresstunnel.proto.DialStatus;
import io.egresstunnel.proto.FrameType;

/**
 * What a {@link TunnelSession} and its streams report as they work. Called on the session's event
 * loop, per frame on the hot path: an implementation must not block or allocate, and is shared by
 * every session of a process, so it must be thread-safe (a {@code LongAdder} per value, say). Every
 * method defaults to doing nothing; {@link #NONE} records nothing at all.
 *
 * <p>docs/metrics.md lists the metrics {@code io.egresstunnel.proto.metrics.TunnelMetrics} makes of
 * these calls.
 */
public interface SessionMetrics {
  /** Records nothing. */
  SessionMetrics NONE = new SessionMetrics() {};

  /** How a stream ended. */
  enum StreamOutcome {
    /** FIN both ways: the stream ended gracefully. */
    OK,
    /** RESET, sent or received, after the stream opened (the client or target went away, say). */
    RESET,
    /** The stream never opened: the dial failed, was refused, timed out or was cancelled. */
    DIAL_FAILED,
    /** The session ended under the stream, dialling or open. */
    SESSION_LOST
  }

  /** A frame arrived from the peer. */
  default void frameReceived(FrameType type) {}

  /** A frame was written to the peer. */
  default void frameSent(FrameType type) {}

  /** DATA payload bytes arrived from the peer. */
  default void dataReceived(int bytes) {}

  /**
   * Of the DATA payload bytes received ({@link #dataReceived}), these went from the websocket to
   * the stream's socket by {@code splice(2)}, without entering the process.
   */
  default void dataSplicedIn(int bytes) {}

  /**
   * Of the DATA payload bytes sent ({@link #dataSent}), these went from the stream's socket to the
   * websocket by {@code splice(2)}, without entering the process.
   */
  default void dataSplicedOut(int bytes) {}

  /** DATA payload bytes were written to the peer. */
  default void dataSent(int bytes) {}

  /** A stream started dialling (server: DIAL sent; agent: DIAL accepted). */
  default void dialStarted() {}

  /** A dialling stream opened or ended. */
  default void dialSettled() {}

  /**
   * Agent: this side answered a DIAL with {@code status}, {@code nanos} after it arrived (0 for a
   * dial the session refused at once, for its limits or a drain).
   */
  default void dialAnswered(DialStatus status, long nanos) {}

  /** A stream opened: its dial succeeded. */
  default void streamOpened() {}

  /**
   * A stream ended; {@code wasOpen} says whether it had opened (a dialling stream had not). Called
   * once per stream.
   */
  default void streamClosed(StreamOutcome outcome, boolean wasOpen) {}

  /** A stream's send window fell to zero: it reads nothing more until the peer grants credit. */
  default void creditStalled() {}

  /**
   * A stalled stream got credit again, or ended while stalled, after {@code nanos} without credit.
   */
  default void creditResumed(long nanos) {}
}
