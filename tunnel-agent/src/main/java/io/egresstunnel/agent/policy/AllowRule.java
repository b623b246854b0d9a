package io.egresstunnel.agent.policy;

import io.egresstunnel.proto.Cidr;
import io.netty.util.NetUtil;
import java.net.Inet4Address;
import java.net.InetAddress;

/**
 * One {@code --allow CIDR[:PORT[-PORT]]} rule: the agent may dial any address in {@code cidr} on a
 * port in {@code fromPort..toPort}.
 *
 * <p>Accepted forms: {@code 10.0.0.0/8}, {@code 10.0.0.5} (a bare address is a /32 or /128), {@code
 * 10.0.0.5:443}, {@code 10.0.0.0/8:443}, {@code 192.168.1.0/24:8000-8100}, {@code fd00::/64:443},
 * {@code [fd00::1]:443}, {@code [fd00::/64]:80-90} and {@code ::1}. Without brackets an IPv6 port
 * can only follow a prefix length: a bare IPv6 address without brackets has no port. IPv4-mapped
 * IPv6 prefixes ({@code ::ffff:10.0.0.0/104}) are stored in their IPv4 form.
 */
public record AllowRule(Cidr cidr, int fromPort, int toPort) {

  /** The lowest port a rule may name. */
  public static final int MIN_PORT = 1;

  /** The highest port a rule may name. */
  public static final int MAX_PORT = 65535;

  private static final String EXPECTED =
      "expected CIDR[:PORT[-PORT]] with ports 1..65535 and a low-high range,"
          + " e.g. 10.0.0.0/8:443, 10.0.0.5, [fd00::/64]:80-90";

  public AllowRule {
    if (cidr == null) {
      throw new IllegalArgumentException("--allow rule CIDR is missing");
    }
    cidr = IpBytes.normalize(cidr);
    if (fromPort < MIN_PORT || fromPort > MAX_PORT || toPort < MIN_PORT || toPort > MAX_PORT) {
      throw new IllegalArgumentException(
          "--allow rule ports " + fromPort + "-" + toPort + " must lie in 1..65535");
    }
    if (fromPort > toPort) {
      throw new IllegalArgumentException(
          "--allow rule port range " + fromPort + "-" + toPort + " is inverted");
    }
  }

  /** A rule for every port of {@code cidr}. */
  public static AllowRule allPorts(Cidr cidr) {
    return new AllowRule(cidr, MIN_PORT, MAX_PORT);
  }

  /** Parses an {@code --allow} flag value; the error names the spec and the expected form. */
  public static AllowRule parse(String spec) {
    if (spec == null || spec.isBlank()) {
      throw new IllegalArgumentException("--allow rule is empty; " + EXPECTED);
    }
    String text = spec.strip();
    String prefix;
    String ports;
    if (text.startsWith("[")) {
      int close = text.indexOf(']');
      if (close < 0) {
        throw invalid(spec, "missing ']'");
      }
      prefix = text.substring(1, close);
      String after = text.substring(close + 1);
      if (after.isEmpty()) {
        ports = null;
      } else if (after.startsWith(":")) {
        ports = after.substring(1);
      } else {
        throw invalid(spec, "unexpected '" + after + "' after ']'");
      }
    } else {
      int slash = text.indexOf('/');
      int colon = slash >= 0 ? text.indexOf(':', slash) : singleColon(text);
      prefix = colon < 0 ? text : text.substring(0, colon);
      ports = colon < 0 ? null : text.substring(colon + 1);
    }
    Cidr cidr = parseCidr(spec, prefix);
    if (ports == null) {
      return allPorts(cidr);
    }
    int dash = ports.indexOf('-');
    int from = parsePort(spec, dash < 0 ? ports : ports.substring(0, dash));
    int to = dash < 0 ? from : parsePort(spec, ports.substring(dash + 1));
    if (from > to) {
      throw invalid(spec, "port range " + from + "-" + to + " is inverted");
    }
    return new AllowRule(cidr, from, to);
  }

  /**
   * True if {@code ip} (IPv4-mapped IPv6 counts as IPv4) is in the CIDR and {@code port} in range.
   */
  public boolean allows(InetAddress ip, int port) {
    return port >= fromPort && port <= toPort && cidr.contains(IpBytes.normalize(ip));
  }

  /** True if the rule covers every port. */
  public boolean allPorts() {
    return fromPort == MIN_PORT && toPort == MAX_PORT;
  }

  /**
   * The canonical spec, which {@link #parse} reads back: {@code 10.0.0.0/8}, {@code
   * 10.0.0.5/32:443}, {@code [fd00::/64]:80-90}.
   */
  @Override
  public String toString() {
    if (allPorts()) {
      return cidr.toString();
    }
    String range = fromPort == toPort ? Integer.toString(fromPort) : fromPort + "-" + toPort;
    return (cidr.isIpv4() ? cidr.toString() : "[" + cidr + "]") + ":" + range;
  }

  /** The colon of an IPv4 {@code ADDRESS:PORT}, or -1 (none, or an IPv6 address's colons). */
  private static int singleColon(String text) {
    int colon = text.indexOf(':');
    return colon >= 0 && text.indexOf(':', colon + 1) < 0 ? colon : -1;
  }

  private static Cidr parseCidr(String spec, String prefix) {
    int slash = prefix.indexOf('/');
    String literal = slash < 0 ? prefix : prefix.substring(0, slash);
    InetAddress address = NetUtil.createInetAddressFromIpAddressString(literal);
    if (address == null) {
      throw invalid(spec, "'" + literal + "' is not an IP address");
    }
    // An IPv4-mapped literal (::ffff:a.b.c.d) parses as IPv4 but its prefix counts 128 bits.
    int mappedBits = address instanceof Inet4Address && literal.indexOf(':') >= 0 ? 96 : 0;
    int bits = address.getAddress().length * 8 + mappedBits;
    int length = bits;
    if (slash >= 0) {
      String digits = prefix.substring(slash + 1);
      if (!isDigits(digits, 3)) {
        throw invalid(spec, "prefix length '" + digits + "' is not a number 0.." + bits);
      }
      length = Integer.parseInt(digits);
    }
    if (mappedBits > 0 && (length < mappedBits || length > bits)) {
      throw invalid(spec, "an IPv4-mapped prefix needs a length of 96..128, not " + length);
    }
    length -= mappedBits;
    try {
      return new Cidr(address, length);
    } catch (IllegalArgumentException e) {
      throw invalid(spec, e.getMessage());
    }
  }

  private static int parsePort(String spec, String digits) {
    if (!isDigits(digits, 5)) {
      throw invalid(spec, "port '" + digits + "' is not a number 1..65535");
    }
    int port = Integer.parseInt(digits);
    if (port < MIN_PORT || port > MAX_PORT) {
      throw invalid(spec, "port " + port + " is outside 1..65535");
    }
    return port;
  }

  private static boolean isDigits(String text, int maxLength) {
    if (text.isEmpty() || text.length() > maxLength) {
      return false;
    }
    for (int i = 0; i < text.length(); i++) {
      char c = text.charAt(i);
      if (c < '0' || c > '9') {
        return false;
      }
    }
    return true;
  }

  private static IllegalArgumentException invalid(String spec, String problem) {
    return new IllegalArgumentException(
        "invalid --allow rule '" + spec + "': " + problem + "; " + EXPECTED);
  }
}
