package io.egresstunnel.server.certs;

import io.netty.util.NetUtil;
import java.io.IOException;
import java.io.StringWriter;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.SecureRandom;
import java.security.Signature;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.ECGenParameterSpec;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Date;
import java.util.List;
import java.util.regex.Pattern;
import org.bouncycastle.asn1.pkcs.PrivateKeyInfo;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x500.X500NameBuilder;
import org.bouncycastle.asn1.x500.style.BCStyle;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.cert.X509v3CertificateBuilder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509ExtensionUtils;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.openssl.PEMKeyPair;
import org.bouncycastle.openssl.PEMParser;
import org.bouncycastle.openssl.jcajce.JcaPEMKeyConverter;
import org.bouncycastle.openssl.jcajce.JcaPEMWriter;
import org.bouncycastle.openssl.jcajce.JcaPKCS8Generator;
import org.bouncycastle.operator.ContentSigner;
import org.bouncycastle.operator.OperatorCreationException;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.bouncycastle.pkcs.PKCS8EncryptedPrivateKeyInfo;

/**
 * The small PKI of a tunnel deployment: a self-signed CA and the leaf certificates it signs, with
 * ECDSA P-256 keys. Bouncy Castle builds and encodes the certificates; keys are made and signatures
 * computed by the JDK's own providers, so no security provider is registered.
 */
public final class Pki {
  /** Certificates start this long before now, for clocks a little behind the issuer's. */
  static final Duration BACKDATE = Duration.ofMinutes(5);

  /** The group of node client certificates, as kubelets' are ({@code O=system:nodes}). */
  public static final String NODES_ORGANIZATION = "system:nodes";

  /** The CN prefix of a node's client certificate ({@code CN=system:node:NAME}). */
  public static final String NODE_CN_PREFIX = "system:node:";

  private static final SecureRandom RANDOM = new SecureRandom();

  /** RFC 1123 host names; a leading {@code *.} label is allowed (wildcard certificates). */
  private static final Pattern DNS_NAME =
      Pattern.compile(
          "(\\*\\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
              + "(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*");

  private Pki() {}

  /** A certificate and its private key. */
  public record Issued(X509Certificate certificate, PrivateKey key) {}

  /** What a leaf certificate is for. */
  public enum Purpose {
    SERVER(KeyPurposeId.id_kp_serverAuth),
    CLIENT(KeyPurposeId.id_kp_clientAuth);

    private final KeyPurposeId eku;

    Purpose(KeyPurposeId eku) {
      this.eku = eku;
    }
  }

  /** A fresh ECDSA P-256 key pair. */
  public static KeyPair newKeyPair() throws GeneralSecurityException {
    KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
    g.initialize(new ECGenParameterSpec("secp256r1"), RANDOM);
    return g.generateKeyPair();
  }

  /** A subject of a common name and, if non-null, an organization. */
  public static X500Name subject(String commonName, String organization) {
    X500NameBuilder b = new X500NameBuilder(BCStyle.INSTANCE);
    if (organization != null) {
      b.addRDN(BCStyle.O, organization);
    }
    b.addRDN(BCStyle.CN, commonName);
    return b.build();
  }

  /** The subject of node {@code name}'s client certificate, as a kubelet's. */
  public static X500Name nodeSubject(String name) {
    return subject(NODE_CN_PREFIX + name, NODES_ORGANIZATION);
  }

  /** A self-signed CA (CA:true, critical; keyCertSign and cRLSign) valid from now for validity. */
  public static Issued newCa(String commonName, Duration validity)
      throws GeneralSecurityException, IOException {
    KeyPair keys = newKeyPair();
    X500Name name = subject(commonName, null);
    Instant now = Instant.now();
    JcaX509ExtensionUtils ext = new JcaX509ExtensionUtils();
    X509v3CertificateBuilder b =
        new JcaX509v3CertificateBuilder(
                name,
                newSerial(),
                Date.from(now.minus(BACKDATE)),
                Date.from(now.plus(validity)),
                name,
                keys.getPublic())
            .addExtension(Extension.basicConstraints, true, new BasicConstraints(0))
            .addExtension(
                Extension.keyUsage, true, new KeyUsage(KeyUsage.keyCertSign | KeyUsage.cRLSign))
            .addExtension(
                Extension.subjectKeyIdentifier,
                false,
                ext.createSubjectKeyIdentifier(keys.getPublic()));
    return new Issued(sign(b, keys.getPrivate()), keys.getPrivate());
  }

  /**
   * A leaf certificate signed by {@code ca}: CA:false, digitalSignature, the purpose's extended key
   * usage, and the given subject alternative names (none for an empty list). It is valid from now
   * for {@code validity}, but never beyond the CA's own expiry.
   */
  public static Issued issue(
      Issued ca, X500Name subject, Purpose purpose, List<GeneralName> sans, Duration validity)
      throws GeneralSecurityException, IOException {
    KeyPair keys = newKeyPair();
    Instant now = Instant.now();
    Instant notAfter = now.plus(validity);
    Instant caNotAfter = ca.certificate().getNotAfter().toInstant();
    if (notAfter.isAfter(caNotAfter)) {
      notAfter = caNotAfter;
    }
    JcaX509ExtensionUtils ext = new JcaX509ExtensionUtils();
    X509v3CertificateBuilder b =
        new JcaX509v3CertificateBuilder(
                ca.certificate(),
                newSerial(),
                Date.from(now.minus(BACKDATE)),
                Date.from(notAfter),
                subject,
                keys.getPublic())
            .addExtension(Extension.basicConstraints, true, new BasicConstraints(false))
            .addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.digitalSignature))
            .addExtension(Extension.extendedKeyUsage, false, new ExtendedKeyUsage(purpose.eku))
            .addExtension(
                Extension.subjectKeyIdentifier,
                false,
                ext.createSubjectKeyIdentifier(keys.getPublic()))
            .addExtension(
                Extension.authorityKeyIdentifier,
                false,
                ext.createAuthorityKeyIdentifier(ca.certificate().getPublicKey()));
    if (!sans.isEmpty()) {
      b.addExtension(
          Extension.subjectAlternativeName,
          false,
          new GeneralNames(sans.toArray(GeneralName[]::new)));
    }
    return new Issued(sign(b, ca.key()), keys.getPrivate());
  }

  /**
   * Subject alternative names from host names and IP addresses, each classified by its form: IPv4
   * and IPv6 literals become IP addresses, everything else must be a DNS name.
   */
  public static List<GeneralName> subjectAltNames(List<String> names) {
    List<GeneralName> sans = new ArrayList<>();
    for (String raw : names) {
      String n = raw.trim();
      if (n.startsWith("[") && n.endsWith("]")) {
        n = n.substring(1, n.length() - 1);
      }
      if (isIpAddress(n)) {
        sans.add(new GeneralName(GeneralName.iPAddress, n));
      } else if (n.length() <= 253 && DNS_NAME.matcher(n).matches()) {
        sans.add(new GeneralName(GeneralName.dNSName, n));
      } else {
        throw new IllegalArgumentException("not a DNS name or IP address: '" + raw + "'");
      }
    }
    return sans;
  }

  static boolean isIpAddress(String s) {
    return NetUtil.isValidIpV4Address(s) || NetUtil.isValidIpV6Address(s);
  }

  /** Loads a CA from PEM files, checking that it is a CA and that the key belongs to it. */
  public static Issued loadCa(Path certFile, Path keyFile)
      throws GeneralSecurityException, IOException {
    X509Certificate cert = readCertificate(certFile);
    PrivateKey key = readPrivateKey(keyFile);
    if (cert.getBasicConstraints() < 0) {
      throw new IllegalArgumentException(certFile + " is not a CA certificate (CA:false)");
    }
    if (!matches(key, cert.getPublicKey())) {
      throw new IllegalArgumentException(keyFile + " is not the private key of " + certFile);
    }
    if (cert.getNotAfter().toInstant().isBefore(Instant.now())) {
      throw new IllegalArgumentException(
          certFile + " expired on " + cert.getNotAfter().toInstant());
    }
    return new Issued(cert, key);
  }

  /** The first certificate in a PEM file. */
  public static X509Certificate readCertificate(Path file)
      throws GeneralSecurityException, IOException {
    try (var in = Files.newInputStream(file)) {
      return (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
    }
  }

  /** An unencrypted private key from PEM: PKCS#8 ({@code PRIVATE KEY}) or OpenSSL's own forms. */
  public static PrivateKey readPrivateKey(Path file) throws IOException {
    Object o;
    try (PEMParser p = new PEMParser(Files.newBufferedReader(file, StandardCharsets.US_ASCII))) {
      o = p.readObject();
    }
    JcaPEMKeyConverter converter = new JcaPEMKeyConverter();
    if (o instanceof PrivateKeyInfo info) {
      return converter.getPrivateKey(info);
    }
    if (o instanceof PEMKeyPair pair) {
      return converter.getKeyPair(pair).getPrivate();
    }
    if (o instanceof PKCS8EncryptedPrivateKeyInfo) {
      throw new IllegalArgumentException(file + " holds an encrypted key; decrypt it first");
    }
    throw new IllegalArgumentException(file + " holds no PEM private key");
  }

  /** The certificate as PEM ({@code BEGIN CERTIFICATE}). */
  public static byte[] certificatePem(X509Certificate cert) throws IOException {
    return pem(cert);
  }

  /** The key as unencrypted PKCS#8 PEM ({@code BEGIN PRIVATE KEY}). */
  public static byte[] privateKeyPem(PrivateKey key) throws IOException {
    return pem(new JcaPKCS8Generator(key, null));
  }

  private static byte[] pem(Object o) throws IOException {
    StringWriter out = new StringWriter();
    try (JcaPEMWriter w = new JcaPEMWriter(out)) {
      w.writeObject(o);
    }
    return out.toString().getBytes(StandardCharsets.US_ASCII);
  }

  /** A random positive 128-bit serial number (RFC 5280 allows up to 20 octets). */
  static BigInteger newSerial() {
    byte[] bytes = new byte[16];
    BigInteger serial;
    do {
      RANDOM.nextBytes(bytes);
      serial = new BigInteger(1, bytes);
    } while (serial.signum() == 0);
    return serial;
  }

  private static X509Certificate sign(X509v3CertificateBuilder b, PrivateKey signer)
      throws GeneralSecurityException {
    try {
      ContentSigner s = new JcaContentSignerBuilder(signatureAlgorithm(signer)).build(signer);
      return new JcaX509CertificateConverter().getCertificate(b.build(s));
    } catch (OperatorCreationException e) {
      throw new GeneralSecurityException("cannot sign with a " + signer.getAlgorithm() + " key", e);
    }
  }

  /** SHA256withECDSA for our keys; SHA256withRSA if an existing CA has an RSA key. */
  private static String signatureAlgorithm(PrivateKey key) {
    return switch (key.getAlgorithm()) {
      case "EC", "ECDSA" -> "SHA256withECDSA";
      case "RSA" -> "SHA256withRSA";
      default ->
          throw new IllegalArgumentException("unsupported CA key algorithm " + key.getAlgorithm());
    };
  }

  /** Whether {@code key} is the private half of {@code pub}: it signs what {@code pub} verifies. */
  public static boolean matches(PrivateKey key, PublicKey pub) throws GeneralSecurityException {
    String alg = signatureAlgorithm(key);
    byte[] challenge = new byte[32];
    RANDOM.nextBytes(challenge);
    Signature s = Signature.getInstance(alg);
    s.initSign(key);
    s.update(challenge);
    byte[] sig = s.sign();
    Signature v = Signature.getInstance(alg);
    v.initVerify(pub);
    v.update(challenge);
    return v.verify(sig);
  }
}
