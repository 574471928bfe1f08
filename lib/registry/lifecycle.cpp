#include "registry/lifecycle.hpp"

#include <libxml/parser.h>
#include <libxml/tree.h>

#include <charconv>

#include "core/error.hpp"

namespace dsk::registry {
namespace {

xmlNode* child(xmlNode* parent, const char* name) {
  for (xmlNode* node = parent ? parent->children : nullptr; node; node = node->next)
    if (node->type == XML_ELEMENT_NODE && xmlStrcmp(node->name, BAD_CAST name) == 0) return node;
  return nullptr;
}

std::string text_of(xmlNode* node) {
  if (!node) return "";
  xmlChar* content = xmlNodeGetContent(node);
  std::string text = content ? reinterpret_cast<char*>(content) : "";
  xmlFree(content);
  return text;
}

// <Days> and <DaysAfterInitiation>: a whole number of days, 0 when absent.
int days_of(xmlNode* node) {
  std::string text = text_of(node);
  int days = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), days);
  if (!text.empty() && (error != std::errc() || end != text.data() + text.size() || days < 0))
    throw RemoteError(str("the server's lifecycle rule has '", text.substr(0, 64), "' where a number of days belongs"));
  return days;
}

// Text inside an element: & < > as entities, and CR as a character reference (a parser turns a
// literal CR into LF).
std::string xml_escaped(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '&') out += "&amp;";
    else if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '\r') out += "&#13;";
    else out += c;
  }
  return out;
}

// A server without lifecycle support (501 or NotImplemented) gets a message naming the
// alternative, dsk-upload prune; any other error passes unchanged.
[[noreturn]] void rethrow_unsupported(const RemoteError& error, const std::string& bucket) {
  std::string message = error.what();
  if (message.find("NotImplemented") != std::string::npos || message.find("HTTP 501") != std::string::npos)
    throw RemoteError(str("s3://", bucket, ": this server does not support bucket lifecycle rules (",
                          message, "); `dsk-upload prune` removes old versions instead"));
  throw error;
}

}  // namespace

std::string lifecycle_to_xml(const std::vector<LifecycleRule>& rules) {
  std::string xml = "<LifecycleConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">";
  for (const auto& rule : rules) {
    xml += "<Rule><ID>" + xml_escaped(rule.id) + "</ID><Filter><Prefix>" + xml_escaped(rule.prefix) + "</Prefix></Filter>";
    xml += str("<Status>", rule.enabled ? "Enabled" : "Disabled", "</Status>");
    if (rule.expire_days > 0) xml += str("<Expiration><Days>", rule.expire_days, "</Days></Expiration>");
    if (rule.abort_incomplete_days > 0)
      xml += str("<AbortIncompleteMultipartUpload><DaysAfterInitiation>", rule.abort_incomplete_days,
                 "</DaysAfterInitiation></AbortIncompleteMultipartUpload>");
    xml += "</Rule>";
  }
  return xml + "</LifecycleConfiguration>";
}

std::vector<LifecycleRule> parse_lifecycle(const std::string& xml) {
  xmlDoc* doc = xmlReadMemory(xml.data(), static_cast<int>(xml.size()), "lifecycle.xml", nullptr,
                              XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  xmlNode* root = doc ? xmlDocGetRootElement(doc) : nullptr;
  if (!root || xmlStrcmp(root->name, BAD_CAST "LifecycleConfiguration") != 0) {
    if (doc) xmlFreeDoc(doc);
    throw RemoteError("the server's lifecycle answer is not a <LifecycleConfiguration>");
  }
  std::vector<LifecycleRule> rules;
  try {
    for (xmlNode* node = root->children; node; node = node->next) {
      if (node->type != XML_ELEMENT_NODE || xmlStrcmp(node->name, BAD_CAST "Rule") != 0) continue;
      LifecycleRule rule;
      rule.id = text_of(child(node, "ID"));
      xmlNode* filter = child(node, "Filter");
      rule.prefix = text_of(filter ? child(filter, "Prefix") : child(node, "Prefix"));
      rule.enabled = text_of(child(node, "Status")) == "Enabled";
      rule.expire_days = days_of(child(child(node, "Expiration"), "Days"));
      rule.abort_incomplete_days =
          days_of(child(child(node, "AbortIncompleteMultipartUpload"), "DaysAfterInitiation"));
      rules.push_back(rule);
    }
  } catch (...) {
    xmlFreeDoc(doc);
    throw;
  }
  xmlFreeDoc(doc);
  return rules;
}

void set_lifecycle(S3Client& client, const std::string& bucket,
                   const std::vector<LifecycleRule>& rules) {
  std::string xml = lifecycle_to_xml(rules);
  try {
    // S3 wants Content-MD5 on PutBucketLifecycleConfiguration.
    client.send("PUT", {bucket, ""}, {{"lifecycle", ""}}, xml,
                {{"content-md5", md5_base64(xml)}, {"content-type", "application/xml"}}, false);
  } catch (const RemoteError& error) {
    rethrow_unsupported(error, bucket);
  }
}

std::vector<LifecycleRule> get_lifecycle(S3Client& client, const std::string& bucket) {
  try {
    Response response = client.send("GET", {bucket, ""}, {{"lifecycle", ""}}, "", {}, true);
    if (response.status == 404) {
      std::string summary = s3_error_summary(response.body);
      if (summary.find("NoSuchLifecycleConfiguration") != std::string::npos) return {};
      throw RemoteError(str("GET s3://", bucket, "?lifecycle: HTTP 404 ", summary));
    }
    return parse_lifecycle(response.body);
  } catch (const RemoteError& error) {
    rethrow_unsupported(error, bucket);
  }
}

}  // namespace dsk::registry
