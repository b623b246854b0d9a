package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.fail;

import io.egresstunnel.proto.Limits;
import io.egresstunnel.server.frontend.ConnectTarget;
import io.netty.util.NetUtil;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;

/**
 * Property tests of {@link ConnectTarget#parse}, with seeded generators (jqwik is not a test
 * dependency of this module). For any string, parsing either yields a target that re-renders to
 * itself with a port in 1..65535 and a host that is safe to log and resolve, or fails with an
 * {@link IllegalArgumentException} that says what was wrong in one bounded line. Nothing else.
 */
class ConnectTargetFuzzTest {
  private static final long SEED = 0xC0_4E_C7L;
  private static final int CASES = 20_000;

  /** The characters a target is made of, and the ones that break it. */
  private static final String STRUCTURAL =
      ":[]%.0123456789abcdefABCDEF-_/@?#+ \t\r\n\u0000\u007f\u0085\u00a0\u2028";

  /** Decimal digits outside ASCII: Character.isDigit and Integer.parseInt both accept them. */
  private static final String UNICODE_DIGITS = "\u0660\u0668\u06f5\u0966\u0e53\uff10\uff18";

  @Test
  void arbitraryStringsParseOrFailWithAClearMessage() {
    Random r = new Random(SEED);
    int parsed = 0;
    for (int i = 0; i < CASES; i++) {
      parsed += check(arbitrary(r)) ? 1 : 0;
    }
    assertThat(parsed).as("arbitrary strings that parsed").isPositive().isLessThan(CASES);
  }

  @Test
  void nearValidTargetsParseOrFailWithAClearMessage() {
    Random r = new Random(SEED + 1);
    int parsed = 0;
    for (int i = 0; i < CASES; i++) {
      parsed += check(nearValid(r)) ? 1 : 0;
    }
    // The mutations must land on both sides of the parser, or they test little.
    assertThat(parsed).as("near-valid targets that parsed").isBetween(CASES / 10, CASES * 9 / 10);
  }

  @Test
  void validTargetsRoundTrip() {
    Random r = new Random(SEED + 2);
    for (int i = 0; i < CASES; i++) {
      Valid v = valid(r);
      ConnectTarget t = parseOrFail(v.authority());
      assertThat(t.host()).as(v.authority()).isEqualTo(v.host());
      assertThat(t.port()).as(v.authority()).isEqualTo(v.port());
      assertThat(t.toString()).as(v.authority()).isEqualTo(v.authority());
      check(v.authority());
    }
  }

  @Test
  void ipv4SpellingsTheRouterWouldTakeForNamesAreRejected() {
    for (String host :
        new String[] {
          "74", "10.1", "167772161", "010.0.0.1", "10.0.0.256", "1.2.3.4.5", "1..2.3"
        }) {
      assertThatThrownBy(() -> ConnectTarget.parse(host + ":10250"))
          .as(host)
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessageContaining("malformed IPv4 address");
    }
    assertThat(ConnectTarget.parse("10.0.0.1:010250").port()).isEqualTo(10250);
    assertThat(ConnectTarget.parse("node-7.4:10250").host()).isEqualTo("node-7.4");
  }

  @Test
  void portsOutsideTheRangeAreRejected() {
    Random r = new Random(SEED + 3);
    for (int i = 0; i < 2_000; i++) {
      String port =
          switch (r.nextInt(6)) {
            case 0 -> "0";
            case 1 -> Integer.toString(65_536 + r.nextInt(Integer.MAX_VALUE - 65_536));
            case 2 -> "-" + (1 + r.nextInt(65_535));
            case 3 -> "0".repeat(1 + r.nextInt(20));
            case 4 -> "9".repeat(11 + r.nextInt(300));
            default -> Long.toString(Integer.MAX_VALUE + 1L + r.nextInt(1_000));
          };
      String authority = "10.0.0.1:" + port;
      check(authority);
      assertThat(parsesAt(authority)).as(authority).isFalse();
    }
  }

  @Test
  void aHostLongerThanANameMayBeIsRejectedAndTheMessageStaysShort() {
    String name = "a".repeat(Limits.MAX_NAME_BYTES);
    assertThat(parseOrFail(name + ":1").host()).isEqualTo(name);
    for (String host :
        List.of(
            name + "a", "é".repeat(127), "x".repeat(100_000), "[" + "1:".repeat(5_000) + "1]")) {
      check(host + ":443");
      assertThat(parsesAt(host + ":443")).as("%d chars", host.length()).isFalse();
    }
  }

  /**
   * {@code [[fd00::5]]:10250} parses to the host {@code [fd00::5]}, brackets included, although the
   * record promises a host without brackets: {@link NetUtil#isValidIpV6Address} strips one pair
   * itself, so the check of the inner text passes. The router reads {@code [fd00::5]} as a name
   * (DIRECT), while the dialer's {@code createByteArrayFromIpAddressString} reads it as the address
   * fd00::5, so a kubelet target can be reached directly instead of through its agent.
   */
  @Test
  void aDoublyBracketedIpv6LiteralIsRejectedOrLosesAllItsBrackets() {
    for (String authority : List.of("[[fd00::5]]:10250", "[[::ffff:10.0.0.1]]:10250")) {
      check(authority);
    }
  }

  /**
   * {@code host:٨٠} parses as port 80: the port check uses {@link Character#isDigit} and {@link
   * Integer#parseInt}, which accept every Unicode decimal digit. RFC 3986 allows ASCII digits only.
   * Over the wire it is out of reach today (Netty decodes the request line as ISO-8859-1, which has
   * no other decimal digits), so this is laxity rather than an exploitable bug.
   */
  @Test
  void aPortIsAsciiDigitsOnly() {
    for (char d : UNICODE_DIGITS.toCharArray()) {
      String authority = "10.0.0.1:8" + d;
      assertThat(parsesAt(authority)).as(authority).isFalse();
    }
  }

  /** Checks the properties every input must satisfy; true if it parsed. */
  private static boolean check(String input) {
    ConnectTarget t;
    try {
      t = ConnectTarget.parse(input);
    } catch (IllegalArgumentException e) {
      assertThat(e.getMessage())
          .as(() -> "message for " + describe(input))
          .isNotBlank()
          .contains("CONNECT target")
          .doesNotContain("\r", "\n")
          .hasSizeLessThan(1_024);
      return false;
    } catch (RuntimeException | Error e) {
      throw new AssertionError("parse(" + describe(input) + ") threw " + e, e);
    }
    Supplier<String> as =
        () -> describe(input) + " -> host " + describe(t.host()) + ", port " + t.port();
    assertThat(t.port()).as(as).isBetween(1, 65_535);
    assertThatCode(() -> Limits.checkName("host", t.host())).as(as).doesNotThrowAnyException();
    assertThat(t.host()).as(as).doesNotStartWith("[");
    if (t.host().indexOf(':') >= 0) {
      assertThat(NetUtil.isValidIpV6Address(t.host())).as(as).isTrue();
    }
    ConnectTarget again = parseOrFail(t.toString());
    assertThat(again).as(as).isEqualTo(t);
    assertThat(again.toString()).as(as).isEqualTo(t.toString());
    return true;
  }

  private static boolean parsesAt(String authority) {
    try {
      ConnectTarget.parse(authority);
      return true;
    } catch (IllegalArgumentException e) {
      return false;
    }
  }

  private static ConnectTarget parseOrFail(String authority) {
    try {
      return ConnectTarget.parse(authority);
    } catch (IllegalArgumentException e) {
      return fail("%s did not parse: %s", describe(authority), e.getMessage());
    }
  }

  // ---- generators ----

  private static String arbitrary(Random r) {
    int length =
        switch (r.nextInt(10)) {
          case 0 -> 0;
          case 1 -> 300 + r.nextInt(2_000);
          default -> r.nextInt(40);
        };
    StringBuilder b = new StringBuilder(length);
    for (int i = 0; i < length; i++) {
      appendRandomChar(r, b);
    }
    return b.toString();
  }

  private static void appendRandomChar(Random r, StringBuilder b) {
    switch (r.nextInt(6)) {
      case 0, 1 -> b.append(STRUCTURAL.charAt(r.nextInt(STRUCTURAL.length())));
      case 2 -> b.append((char) (0x20 + r.nextInt(0x5F)));
      case 3 -> b.append(UNICODE_DIGITS.charAt(r.nextInt(UNICODE_DIGITS.length())));
      case 4 -> b.append((char) r.nextInt(0x10000)); // unpaired surrogates included
      default -> b.appendCodePoint(0x10000 + r.nextInt(0x10FFFF - 0x10000));
    }
  }

  private static String nearValid(Random r) {
    StringBuilder b = new StringBuilder(valid(r).authority());
    int mutations = 1 + r.nextInt(3);
    for (int m = 0; m < mutations; m++) {
      int at = b.length() == 0 ? 0 : r.nextInt(b.length());
      switch (r.nextInt(12)) {
        case 0 -> {
          if (b.length() > 0) {
            b.deleteCharAt(at);
          }
        }
        case 1 -> {
          StringBuilder c = new StringBuilder();
          appendRandomChar(r, c);
          b.insert(at, c);
        }
        case 2 -> {
          if (b.length() > 0) {
            StringBuilder c = new StringBuilder();
            appendRandomChar(r, c);
            b.replace(at, at + 1, c.toString());
          }
        }
        case 3 -> { // drop a bracket, or add an unbalanced one
          int bracket = Math.max(b.indexOf("["), b.indexOf("]"));
          if (bracket >= 0) {
            b.deleteCharAt(bracket);
          } else {
            b.insert(r.nextBoolean() ? 0 : at, r.nextBoolean() ? '[' : ']');
          }
        }
        case 4 -> replacePort(b, outOfRangePort(r));
        case 5 -> replacePort(b, "");
        case 6 -> replaceHost(b, "");
        case 7 -> replaceHost(b, "h".repeat(Limits.MAX_NAME_BYTES - 2 + r.nextInt(5)));
        case 8 -> b.insert(at, "%" + Integer.toHexString(r.nextInt(256)));
        case 9 -> replacePort(b, "0".repeat(r.nextInt(12)) + (1 + r.nextInt(65_535)));
        case 10 -> {
          int end = Math.min(b.length(), at + 1 + r.nextInt(4));
          b.insert(at, b.substring(at, end)); // duplicate a few characters
        }
        default -> b.setLength(at); // truncate
      }
    }
    return b.toString();
  }

  private static String outOfRangePort(Random r) {
    return switch (r.nextInt(6)) {
      case 0 -> "0";
      case 1 -> "65536";
      case 2 -> "-1";
      case 3 -> "+80";
      case 4 -> " 80";
      default -> "99999999999999999999";
    };
  }

  private static void replacePort(StringBuilder b, String port) {
    int colon = b.lastIndexOf(":");
    b.replace(colon + 1, b.length(), port);
  }

  private static void replaceHost(StringBuilder b, String host) {
    int colon = b.lastIndexOf(":");
    b.replace(0, Math.max(colon, 0), host);
  }

  /** A valid target: its authority form and the host and port it must parse to. */
  record Valid(String authority, String host, int port) {}

  private static Valid valid(Random r) {
    int port =
        switch (r.nextInt(5)) {
          case 0 -> 1;
          case 1 -> 65_535;
          case 2 -> 10_250;
          default -> 1 + r.nextInt(65_535);
        };
    String host;
    String rendered;
    switch (r.nextInt(4)) {
      case 0 -> {
        host = r.nextInt(256) + "." + r.nextInt(256) + "." + r.nextInt(256) + "." + r.nextInt(256);
        rendered = host;
      }
      case 1, 2 -> {
        byte[] v6 = new byte[16];
        r.nextBytes(v6);
        if (r.nextBoolean()) {
          for (int i = r.nextInt(16); i < 16 && i < 12; i++) {
            v6[i] = 0; // runs of zero groups, for the :: form
          }
        }
        host =
            switch (r.nextInt(3)) {
              case 0 -> NetUtil.bytesToIpAddress(v6);
              case 1 -> fullIpv6(v6);
              default ->
                  "::ffff:" + (v6[12] & 0xFF) + "." + (v6[13] & 0xFF) + ".0." + r.nextInt(256);
            };
        rendered = "[" + host + "]";
      }
      default -> {
        host = hostName(r);
        rendered = host;
      }
    }
    return new Valid(rendered + ":" + port, host, port);
  }

  private static String fullIpv6(byte[] v6) {
    List<String> groups = new ArrayList<>();
    for (int i = 0; i < 16; i += 2) {
      groups.add(Integer.toHexString(((v6[i] & 0xFF) << 8) | (v6[i + 1] & 0xFF)));
    }
    return String.join(":", groups);
  }

  /** A DNS-like name, sometimes with upper case, a trailing dot or a non-ASCII label. */
  private static String hostName(Random r) {
    String alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-ABCZ";
    StringBuilder b = new StringBuilder();
    int labels = 1 + r.nextInt(4);
    for (int l = 0; l < labels; l++) {
      if (l > 0) {
        b.append('.');
      }
      if (r.nextInt(20) == 0) {
        b.append("bücher");
        continue;
      }
      int length = 1 + r.nextInt(20);
      for (int i = 0; i < length; i++) {
        b.append(alphabet.charAt(r.nextInt(alphabet.length())));
      }
    }
    if (b.chars().allMatch(c -> Character.isDigit(c) || c == '.')) {
      b.append('x'); // digits and dots only are an IPv4 spelling, not a name
    }
    if (r.nextInt(10) == 0) {
      b.append('.');
    }
    return b.toString();
  }

  /** The input with control characters escaped and a length cap, for assertion messages. */
  static String describe(String s) {
    StringBuilder b = new StringBuilder("\"");
    for (int i = 0; i < s.length() && i < 200; i++) {
      char c = s.charAt(i);
      if (c < 0x20 || c == 0x7F || (c >= 0x80 && c < 0xA0) || Character.isSurrogate(c)) {
        b.append(String.format("\\u%04x", (int) c));
      } else {
        b.append(c);
      }
    }
    b.append(s.length() > 200 ? "\"... (" + s.length() + " chars)" : "\"");
    return b.toString();
  }
}
