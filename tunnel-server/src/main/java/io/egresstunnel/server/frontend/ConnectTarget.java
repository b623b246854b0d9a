package io.egresstunnel.server.frontend;

import io.egresstunnel.proto.Limits;
import io.netty.util.NetUtil;

/**
 * The target of a CONNECT, from its request line in authority form: {@code host:port}, {@code
 * 10.0.0.1:10250} or {@code [fd00::1]:10250}. The host has no brackets here.
 *
 * <p>Only spellings that the router and the dialer read the same way are accepted: an IPv4 address
 * is four decimal parts without leading zeros (the resolver would also take {@code 10.1} or {@code
 * 167772161} as an address, which the router would take as a name and route differently), an IPv6
 * literal has no zone and no nested brackets, and the port is ASCII digits.
 */
public record ConnectTarget(String host, int port) {

  public static ConnectTarget parse(String authority) {
    String expected = "expected host:port, got '" + printable(authority) + "'";
    int colon = authority.lastIndexOf(':');
    if (colon <= 0 || colon == authority.length() - 1) {
      throw new IllegalArgumentException("malformed CONNECT target: " + expected);
    }
    String host = authority.substring(0, colon);
    String portText = authority.substring(colon + 1);
    if (host.startsWith("[")) {
      String inner = host.length() >= 2 ? host.substring(1, host.length() - 1) : "";
      if (!host.endsWith("]")
          || inner.indexOf('[') >= 0
          || inner.indexOf(']') >= 0
          || inner.indexOf('%') >= 0
          || !NetUtil.isValidIpV6Address(inner)) {
        throw new IllegalArgumentException("malformed IPv6 literal in CONNECT target: " + expected);
      }
      host = inner;
    } else if (host.indexOf(':') >= 0) {
      throw new IllegalArgumentException(
          "an IPv6 CONNECT target needs brackets ([addr]:port): " + expected);
    } else if (looksNumeric(host) && !isDottedQuad(host)) {
      throw new IllegalArgumentException(
          "malformed IPv4 address in CONNECT target (four decimal parts): " + expected);
    }
    int port = -1;
    String digits = portText.replaceFirst("^0+(?=.)", "");
    if (digits.length() <= 5 && portText.chars().allMatch(c -> c >= '0' && c <= '9')) {
      port = Integer.parseInt(digits);
    }
    if (port < 1 || port > 65535) {
      throw new IllegalArgumentException(
          "malformed CONNECT target: port must be 1..65535, " + expected);
    }
    try {
      Limits.checkName("host", host);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("malformed CONNECT target: " + e.getMessage(), e);
    }
    return new ConnectTarget(host, port);
  }

  /** Digits and dots only: the resolver takes it as an IPv4 address in one of its spellings. */
  private static boolean looksNumeric(String host) {
    return host.chars().allMatch(c -> (c >= '0' && c <= '9') || c == '.');
  }

  private static boolean isDottedQuad(String host) {
    String[] parts = host.split("\\.", -1);
    if (parts.length != 4) {
      return false;
    }
    for (String part : parts) {
      if (part.isEmpty()
          || part.length() > 3
          || (part.length() > 1 && part.charAt(0) == '0')
          || !part.chars().allMatch(c -> c >= '0' && c <= '9')
          || Integer.parseInt(part) > 255) {
        return false;
      }
    }
    return true;
  }

  private static String printable(String s) {
    return printable(s, 300);
  }

  /** {@code s} with control characters (C0, DEL, C1) as '?', cut at {@code max} characters. */
  static String printable(String s, int max) {
    StringBuilder b = new StringBuilder();
    for (int i = 0; i < s.length() && i < max; i++) {
      char c = s.charAt(i);
      b.append(Character.isISOControl(c) ? '?' : c);
    }
    return b.toString();
  }

  @Override
  public String toString() {
    return (host.indexOf(':') >= 0 ? "[" + host + "]" : host) + ":" + port;
  }
}
