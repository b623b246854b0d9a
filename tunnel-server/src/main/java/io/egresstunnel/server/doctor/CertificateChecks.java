package io.egresstunnel.server.doctor;

import io.egresstunnel.server.PeerCertificates;
import io.egresstunnel.server.certs.Pki;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.PrivateKey;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.time.LocalDate;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Locale;

/**
 * Checks of one certificate file the way its peer will see it: dates, key, chain to the CA the peer
 * trusts, the names clients dial (server certificates), the extended key usage, and the CN the
 * server admits (the apiserver's client certificate).
 */
final class CertificateChecks {
  /** Certificates that expire within this are reported as a warning. */
  static final Duration EXPIRY_WARNING = Duration.ofDays(30);

  private static final String SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
  private static final String CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";

  private final Findings findings;
  private final Instant now;

  CertificateChecks(Findings findings, Instant now) {
    this.findings = findings;
    this.now = now;
  }

  /** A role a certificate plays. */
  enum Role {
    SERVER,
    CLIENT
  }

  /**
   * Every certificate in a PEM file, the leaf first; reports the file as failed (and returns null)
   * when it cannot be read.
   */
  List<X509Certificate> read(String check, Path file) {
    try (InputStream in = Files.newInputStream(file)) {
      List<X509Certificate> certs = new ArrayList<>();
      for (var c : CertificateFactory.getInstance("X.509").generateCertificates(in)) {
        certs.add((X509Certificate) c);
      }
      if (certs.isEmpty()) {
        findings.fail(check, file + " holds no PEM certificate");
        return null;
      }
      return certs;
    } catch (IOException e) {
      findings.fail(check, "cannot read " + file + ": " + e.getMessage());
      return null;
    } catch (GeneralSecurityException e) {
      findings.fail(check, file + " is not a PEM certificate: " + e.getMessage());
      return null;
    }
  }

  /** Dates of every certificate in {@code certs} (a CA bundle may hold several). */
  void validity(String check, Path file, List<X509Certificate> certs) {
    for (X509Certificate c : certs) {
      String who = certs.size() > 1 ? " (" + subject(c) + ")" : "";
      Instant notAfter = c.getNotAfter().toInstant();
      Instant notBefore = c.getNotBefore().toInstant();
      if (now.isAfter(notAfter)) {
        findings.fail(
            check,
            file.getFileName()
                + who
                + " expired on "
                + day(notAfter)
                + " ("
                + Duration.between(notAfter, now).toDays()
                + " days ago): peers reject it; reissue it");
      } else if (now.isBefore(notBefore)) {
        findings.fail(
            check,
            file.getFileName()
                + who
                + " is not valid before "
                + notBefore
                + ": peers reject it until then (is this machine's clock right?)");
      } else {
        long days = Duration.between(now, notAfter).toDays();
        String message =
            file.getFileName() + who + " valid until " + day(notAfter) + " (" + days + " days)";
        if (Duration.between(now, notAfter).compareTo(EXPIRY_WARNING) < 0) {
          findings.warn(check, message + ": it expires within 30 days; reissue it soon");
        } else {
          findings.ok(check, message);
        }
      }
    }
  }

  /** Whether {@code keyFile} holds the private key of {@code cert}. */
  void keyMatches(String check, String keyFlag, Path keyFile, X509Certificate cert) {
    PrivateKey key;
    try {
      key = Pki.readPrivateKey(keyFile);
    } catch (IOException | RuntimeException e) {
      findings.fail(check, "cannot read " + keyFlag + " " + keyFile + ": " + e.getMessage());
      return;
    }
    try {
      if (Pki.matches(key, cert.getPublicKey())) {
        findings.ok(check, keyFlag + " " + keyFile.getFileName() + " is this certificate's key");
      } else {
        findings.fail(
            check,
            keyFlag
                + " "
                + keyFile.getFileName()
                + " is not the key of this certificate: TLS handshakes will fail; give the key"
                + " it was issued with");
      }
    } catch (GeneralSecurityException | IllegalArgumentException e) {
      findings.fail(
          check,
          keyFlag
              + " "
              + keyFile.getFileName()
              + " ("
              + key.getAlgorithm()
              + ") does not fit the certificate's "
              + cert.getPublicKey().getAlgorithm()
              + " key: "
              + e.getMessage());
    }
  }

  /**
   * Whether {@code chain} (the leaf, then any intermediates from its file) leads to a certificate
   * in {@code caFile}: each signature checked with its issuer's key.
   */
  void chain(
      String check,
      List<X509Certificate> chain,
      String caFlag,
      Path caFile,
      List<X509Certificate> ca) {
    X509Certificate current = chain.get(0);
    List<X509Certificate> intermediates = chain.subList(1, chain.size());
    for (int depth = 0; depth < 10; depth++) {
      X509Certificate anchor = signer(current, ca);
      if (anchor != null) {
        findings.ok(
            check,
            "signed by "
                + (depth == 0 ? "" : "(through " + depth + " intermediate(s)) ")
                + subject(anchor)
                + " in "
                + caFlag
                + " "
                + caFile.getFileName());
        return;
      }
      X509Certificate next = signer(current, intermediates);
      if (next == null || next.equals(current)) {
        break;
      }
      current = next;
    }
    findings.fail(
        check,
        "not signed by "
            + caFlag
            + " "
            + caFile.getFileName()
            + " (its issuer is "
            + current.getIssuerX500Principal().getName()
            + ", the CA file holds "
            + String.join("; ", ca.stream().map(CertificateChecks::subject).toList())
            + "): the peer will reject it; issue it from that CA or give the peer this one's CA");
  }

  private static X509Certificate signer(X509Certificate cert, Collection<X509Certificate> among) {
    for (X509Certificate candidate : among) {
      if (!candidate.getSubjectX500Principal().equals(cert.getIssuerX500Principal())) {
        continue;
      }
      try {
        cert.verify(candidate.getPublicKey());
        return candidate;
      } catch (GeneralSecurityException e) {
        // same name, other key: keep looking
      }
    }
    return null;
  }

  /** Whether a server certificate covers each name or address its clients dial. */
  void names(String check, X509Certificate cert, List<String> dialed, String why) {
    List<String> sans = sans(cert);
    for (String name : dialed) {
      if (covers(cert, name)) {
        findings.ok(check, "covers " + name + " (" + why + ")");
      } else {
        findings.fail(
            check,
            "does not cover "
                + name
                + " ("
                + why
                + "); its names are "
                + (sans.isEmpty() ? "none" : String.join(", ", sans))
                + ": clients will refuse it; reissue it with that name (certs --server-san)");
      }
    }
  }

  /** The extended key usage the role needs, if the certificate restricts it. */
  void usage(String check, X509Certificate cert, Role role) {
    List<String> eku;
    try {
      eku = cert.getExtendedKeyUsage();
    } catch (java.security.cert.CertificateParsingException e) {
      findings.fail(check, "unreadable extended key usage: " + e.getMessage());
      return;
    }
    String needed = role == Role.SERVER ? SERVER_AUTH : CLIENT_AUTH;
    String name = role == Role.SERVER ? "serverAuth" : "clientAuth";
    if (eku == null) {
      findings.ok(check, "no extended key usage restriction: usable for " + name);
    } else if (eku.contains(needed)) {
      findings.ok(check, "extended key usage includes " + name);
    } else {
      findings.fail(
          check,
          "extended key usage lacks "
              + name
              + ": TLS peers reject it in this role; reissue it with "
              + name);
    }
  }

  /** Whether the apiserver's client certificate has a CN that {@code allowed} admits. */
  void allowedName(String check, X509Certificate cert, List<String> allowed) {
    String cn = PeerCertificates.commonName(cert);
    if (allowed.contains(cn)) {
      findings.ok(check, "CN=" + cn + " is in --client-allowed-names");
    } else {
      findings.fail(
          check,
          "CN="
              + cn
              + " is not in --client-allowed-names "
              + String.join(",", allowed)
              + ": the server answers its CONNECTs 403");
    }
  }

  static boolean covers(X509Certificate cert, String name) {
    boolean ip = isIpLiteral(name);
    Collection<List<?>> alts;
    try {
      alts = cert.getSubjectAlternativeNames();
    } catch (java.security.cert.CertificateParsingException e) {
      return false;
    }
    if (alts == null) {
      return false;
    }
    for (List<?> alt : alts) {
      int type = (Integer) alt.get(0);
      String value = String.valueOf(alt.get(1));
      if (ip && type == 7 && sameAddress(value, name)) {
        return true;
      }
      if (!ip && type == 2 && dnsMatches(value, name)) {
        return true;
      }
    }
    return false;
  }

  private static boolean sameAddress(String a, String b) {
    try {
      return InetAddress.getByName(a).equals(InetAddress.getByName(b));
    } catch (IOException e) {
      return false;
    }
  }

  private static boolean dnsMatches(String pattern, String name) {
    String p = pattern.toLowerCase(Locale.ROOT);
    String n = name.toLowerCase(Locale.ROOT);
    if (p.startsWith("*.")) {
      int dot = n.indexOf('.');
      return dot > 0 && n.substring(dot).equals(p.substring(1));
    }
    return p.equals(n);
  }

  static boolean isIpLiteral(String s) {
    return s.indexOf(':') >= 0 || s.matches("[0-9.]+");
  }

  private static List<String> sans(X509Certificate cert) {
    List<String> out = new ArrayList<>();
    try {
      Collection<List<?>> alts = cert.getSubjectAlternativeNames();
      if (alts != null) {
        for (List<?> alt : alts) {
          int type = (Integer) alt.get(0);
          if (type == 2 || type == 7) {
            out.add((type == 2 ? "DNS " : "IP ") + alt.get(1));
          }
        }
      }
    } catch (java.security.cert.CertificateParsingException e) {
      // reported as no names
    }
    return out;
  }

  static String subject(X509Certificate c) {
    return c.getSubjectX500Principal().getName();
  }

  private static LocalDate day(Instant i) {
    return LocalDate.ofInstant(i, ZoneOffset.UTC);
  }
}
