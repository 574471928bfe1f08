#include "finetune/data/classify.hpp"
#include "finetune/data/clean.hpp"
#include "finetune/data/command.hpp"
#include "finetune/data/select.hpp"

namespace dsk::finetune {

void add_data_commands(CLI::App& app) {
  add_clean_command(app);
  add_select_command(app);
  add_classify_command(app);
}

}  // namespace dsk::finetune
