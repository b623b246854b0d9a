package io.egresstunnel.server.doctor;

import java.io.PrintWriter;

/**
 * The doctor's lines as they are found: one per check, {@code ok}, {@code WARN} or {@code FAIL}.
 */
final class Findings {
  enum Level {
    OK("ok"),
    WARN("WARN"),
    FAIL("FAIL");

    final String word;

    Level(String word) {
      this.word = word;
    }
  }

  private final PrintWriter out;
  private int failures;
  private int warnings;
  private int checks;

  Findings(PrintWriter out) {
    this.out = out;
  }

  void ok(String check, String message) {
    add(Level.OK, check, message);
  }

  void warn(String check, String message) {
    add(Level.WARN, check, message);
  }

  void fail(String check, String message) {
    add(Level.FAIL, check, message);
  }

  void add(Level level, String check, String message) {
    checks++;
    if (level == Level.FAIL) {
      failures++;
    } else if (level == Level.WARN) {
      warnings++;
    }
    out.printf("%-4s  %s: %s%n", level.word, check, message);
    out.flush();
  }

  int failures() {
    return failures;
  }

  /** The closing line: how many checks, warnings and failures. */
  void summary() {
    out.printf(
        "%d check(s): %d ok, %d warning(s), %d failure(s)%n",
        checks, checks - warnings - failures, warnings, failures);
    out.flush();
  }
}
